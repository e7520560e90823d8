using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;

namespace JobLog.Core.Tests.Querying;

/// <summary>The plan of a query EF Core printed with <c>ToQueryString()</c>, on either database.</summary>
internal static class QueryPlans
{
    /// <summary>
    /// SQLite's <c>EXPLAIN QUERY PLAN</c> lines, or PostgreSQL's <c>EXPLAIN (FORMAT JSON)</c> with the parameters written in
    /// (a custom plan, as Npgsql's unprepared statements get).
    /// </summary>
    public static async Task<string> OfAsync(JobLogDbContext db, LedgerProvider provider, string query)
    {
        if (provider == LedgerProvider.Sqlite)
        {
            return await SqlitePlan.OfAsync(db, query);
        }

        await db.Database.OpenConnectionAsync();
        await using var command = db.Database.GetDbConnection().CreateCommand();
        command.CommandText = "EXPLAIN (FORMAT JSON) " + Inline(query);
        return (string)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>The nodes of a PostgreSQL JSON plan of one type (every node for null), each with its properties.</summary>
    public static List<JsonElement> Nodes(string json, string? type)
    {
        var found = new List<JsonElement>();
        using var document = JsonDocument.Parse(json);
        Collect(document.RootElement[0].GetProperty("Plan"));
        return found;

        void Collect(JsonElement node)
        {
            if (type is null || node.GetProperty("Node Type").GetString() == type)
            {
                found.Add(node.Clone());
            }

            if (node.TryGetProperty("Plans", out var children))
            {
                foreach (var child in children.EnumerateArray())
                {
                    Collect(child);
                }
            }
        }
    }

    /// <summary>EF's query string with its parameters written in (<c>-- @queue='billing'</c> lines), for EXPLAIN.</summary>
    public static string Inline(string query)
    {
        var lines = query.Split('\n');
        var values = lines.Select(l => Regex.Match(l, "^-- (@\\w+)='(.*)'")).Where(m => m.Success)
            .ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
        var sql = string.Join('\n', lines.Where(l => !l.StartsWith("--", StringComparison.Ordinal)));
        return Regex.Replace(sql, "@\\w+", m => values.TryGetValue(m.Value, out var v)
            ? (int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out _) ? v : "'" + v.Replace("'", "''", StringComparison.Ordinal) + "'")
            : m.Value);
    }
}
