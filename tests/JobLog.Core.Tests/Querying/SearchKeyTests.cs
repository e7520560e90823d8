using System.Text.RegularExpressions;
using JobLog.Querying;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Querying;

/// <summary>
/// PostgreSQL's trigram search looks up the text's key only (a GIN scan reads every trigram's whole posting list, and an
/// order number's punctuation trigrams are in every row) and checks the whole text on the rows found (docs/search.md).
/// </summary>
public class SearchKeyTests
{
    [TestCase("ord-0032dcd5-z", "0032dcd5")]
    [TestCase("ORD-2026-000124", "000124")]
    [TestCase("Reference=ord-0032dcd5", "0032dcd5")]
    [TestCase("gateway did not", "gateway")]
    [TestCase("Amount=", "Amount")]
    [TestCase("0032dcd5", null)]
    [TestCase("ab-cd", null)]
    [TestCase("\"", null)]
    public void Key_IsTheLongestAlphanumericRunWithADigit_ElseTheLongest(string text, string? key) =>
        Assert.That(TaskSearch.Parse(text).Key, Is.EqualTo(key));

    [TestCase("ord-0032dcd5-z", true)]
    [TestCase("0032dcd5", true)]
    [TestCase("CustomerId=123457,", true)]
    [TestCase("ORD-2026-000124", true)]
    [TestCase("EUR", false)]
    [TestCase("could not serialize", false)]
    [TestCase("CustomerId=12345,", false)]
    [TestCase("2026-12-07", false)]
    [TestCase("Amount=99.90", false)]
    [TestCase("abcdefgh", false)]
    public void LooksRare_WhenTheKeyRunHasADigitAndSixCharacters(string text, bool rare) =>
        Assert.That(TaskSearch.Parse(text).LooksRare, Is.EqualTo(rare));

    [Test]
    public async Task RequestPath_OnPostgreSql_TheTrigramIndexOfThePathLooksUpTheKeyOnly()
    {
        await using var host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(LedgerProvider.PostgreSql));
        await using var scope = host.Services.CreateAsyncScope();
        var queries = scope.ServiceProvider.GetRequiredService<LedgerQueries>();
        var db = scope.ServiceProvider.GetRequiredService<JobLogDbContext>();
        var plan = await PlanAsync(db, queries.InputRequestMatchesQuery("/api/customers/4242").ToQueryString());
        var text = string.Join("\n", plan);
        var conditions = plan.Where(l => l.Contains("Index Cond", StringComparison.Ordinal) && l.Contains("~~*", StringComparison.Ordinal)).ToList();
        // Session 13 (qreq): the requests' own GIN index, asked for the key; the whole path checked on the rows found.
        Assert.That(conditions, Has.Count.EqualTo(1), text);
        Assert.That(conditions, Has.All.Contains("%4242%").And.None.Contains("customers"), text);
        Assert.That(plan.Where(l => l.Contains("Filter", StringComparison.Ordinal)), Has.Some.Contains("%/api/customers/4242%"), text);
    }

    private static async Task<List<string>> PlanAsync(JobLogDbContext db, string sql)
    {
        await db.Database.OpenConnectionAsync();
        await using var command = db.Database.GetDbConnection().CreateCommand();
        foreach (Match p in Regex.Matches(sql, "^-- @?(\\w+)='(.*)'", RegexOptions.Multiline))
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = p.Groups[1].Value;
            parameter.Value = p.Groups[2].Value;
            command.Parameters.Add(parameter);
        }

        // An empty table would be scanned; the plan the GIN index gives is the one of a big ledger.
        command.CommandText = "SET enable_seqscan = off; EXPLAIN " + sql;
        var plan = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            plan.Add(reader.GetString(0));
        }

        return plan;
    }

    [Test]
    public async Task RareTerm_OnPostgreSql_TheTrigramIndexLooksUpTheKeyOnly()
    {
        await using var host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(LedgerProvider.PostgreSql));
        await using var scope = host.Services.CreateAsyncScope();
        var queries = scope.ServiceProvider.GetRequiredService<LedgerQueries>();
        var db = scope.ServiceProvider.GetRequiredService<JobLogDbContext>();
        var sql = queries.MatchingIdsQuery("ord-0032dcd5-z").ToQueryString();
        await db.Database.OpenConnectionAsync();
        await using var command = db.Database.GetDbConnection().CreateCommand();
        var parameters = Regex.Matches(sql, "^-- @?(\\w+)='(.*)'", RegexOptions.Multiline);
        foreach (Match p in parameters)
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = p.Groups[1].Value;
            parameter.Value = p.Groups[2].Value;
            command.Parameters.Add(parameter);
        }

        // An empty table would be scanned; the plan the GIN indexes give is the one of a big ledger.
        command.CommandText = "SET enable_seqscan = off; EXPLAIN " + sql;
        var plan = new List<string>();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                plan.Add(reader.GetString(0));
            }
        }

        // EXPLAIN breaks a line at the line feed between the two columns of the task text's index expression: one
        // plan node a line again.
        var text = string.Join("\n", plan);
        plan = [.. text.Replace("'\n'::text", "E'\\n'::text", StringComparison.Ordinal).Split('\n')];
        var conditions = plan.Where(l => l.Contains("Index Cond", StringComparison.Ordinal) && l.Contains("~~*", StringComparison.Ordinal)).ToList();
        // One index: the side table's text (the tasks' Input and TaskKwargs, the runs' ErrorMessage).
        Assert.That(conditions, Has.Count.EqualTo(1), text);
        Assert.That(conditions, Has.All.Contains("0032dcd5").And.None.Contains("ord-"), text);
        Assert.That(plan.Where(l => l.Contains("Filter", StringComparison.Ordinal)), Has.Some.Contains("%ord-0032dcd5-z%"), text);
    }
}
