using System.Data.Common;
using System.Globalization;
using JobLog.Querying;
using JobLog.Recording;
using JobLog.Storage;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage;

/// <summary>
/// The migration <c>JobRetryAttempt</c> (session 32) on a ledger that existed before it: its runs kept, without an
/// attempt (null: they were recorded before JobLog numbered job attempts), and the writer records job attempts on the
/// upgraded ledger. On a partitioned PostgreSQL ledger the column is added to the partitioned table, so to every partition.
/// </summary>
[TestFixture(LedgerProvider.Sqlite, false)]
[TestFixture(LedgerProvider.PostgreSql, false)]
[TestFixture(LedgerProvider.PostgreSql, true)]
public class JobRetryAttemptMigrationTests(LedgerProvider provider, bool partitioned)
{
    private static readonly DateTime T0 = DateTime.UtcNow.AddHours(-1);
    private readonly Guid _job = Guid.NewGuid();
    private LedgerHost _host = null!;

    [SetUp]
    public async Task SetUp() =>
        _host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider), o => o.Partitioning.Enabled = partitioned, start: partitioned);

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    [Test]
    public async Task ALedgerBeforeTheColumn_Upgraded_KeepsItsRunsWithoutAnAttempt_AndRecordsJobAttempts()
    {
        Guid? oldRun = null;
        if (partitioned)
        {
            // Partitioned by the start-up at the newest migration; taken back before the column (EF's migrator, as
            // `dotnet ef database update` does), then up again as a start-up would.
            await MigrateAsync(before: true);
            Assert.That(await PartitionsWithTheColumnAsync(), Is.EqualTo((await PartitionsAsync(), 0L)), "reverted: no partition has the column");
            await MigrateAsync(before: false);
            var (partitions, withColumn) = await PartitionsWithTheColumnAsync();
            Assert.That(partitions, Is.GreaterThan(2), "the test's premise: days, _undated and _default");
            Assert.That(withColumn, Is.EqualTo(partitions), "every partition of the runs has the column");
        }
        else
        {
            await MigrateAsync(before: true);
            oldRun = await WriteJobRunBeforeTheColumnAsync();
            await _host.Host.StartAsync();
        }

        // The writer goes on on the upgraded ledger: an occurrence's attempt 0, then its retry.
        var recorder = _host.Services.GetRequiredService<LedgerRecorder>();
        var seed = new TaskPayload { Id = _job, Name = "Report", DispatchedAt = T0 };
        var runs = new List<Guid>();
        for (var attempt = 0; attempt < 2; attempt++)
        {
            var run = new RunPayload
            {
                Id = Guid.NewGuid(), TaskId = _job, Name = "Report", ConsumerType = "ReportConsumer", Start = DateTime.UtcNow.AddSeconds(attempt),
                JobRetryAttempt = attempt,
            };
            recorder.Enqueue(new RunStarted(run, seed, false));
            recorder.Enqueue(new RunFinished(run.Id, _job, attempt == 0 ? TaskRunState.Retried : TaskRunState.Succeeded, run.Start.AddMilliseconds(10), null, null, null));
            await _host.FlushAsync();
            runs.Add(run.Id);
        }

        var stored = await _host.QueryAsync(db => db.TaskRunLogs.AsNoTracking().Where(r => r.TaskId == _job).OrderBy(r => r.Retries).ToListAsync());
        var expected = new List<(Guid, int, int?)>();
        if (oldRun is { } old)
        {
            expected.Add((old, 0, null));
        }

        expected.AddRange([(runs[0], expected.Count, 0), (runs[1], expected.Count + 1, 1)]);
        Assert.That(stored.Select(r => (r.Id, r.Retries, r.JobRetryAttempt)), Is.EqualTo(expected));

        await using var scope = _host.Services.CreateAsyncScope();
        var detail = (await scope.ServiceProvider.GetRequiredService<LedgerQueries>().TaskAsync(_job, default))!;
        Assert.That(detail.Runs.OrderBy(r => r.Retries).Select(detail.JobAttempt),
            Is.EqualTo((oldRun is null ? Array.Empty<string?>() : [null]).Concat(["occurrence 1 · attempt 1", "occurrence 1 · attempt 2"])),
            "a run recorded before the column is no numbered job attempt; the new ones are");
    }

    /// <summary>Migrates to the migration before <c>JobRetryAttempt</c> (<paramref name="before"/>), or to the newest.</summary>
    private Task MigrateAsync(bool before) => _host.QueryAsync(async db =>
    {
        var migrations = db.Database.GetMigrations().ToList();
        var index = migrations.FindIndex(m => m.EndsWith("_JobRetryAttempt", StringComparison.Ordinal));
        Assert.That(index, Is.GreaterThan(0));
        await db.GetService<IMigrator>().MigrateAsync(before ? migrations[index - 1] : migrations[^1]);
        return 0;
    });

    /// <summary>A task and a run of the job written in the schema before the migration (the run's Retries 0).</summary>
    private async Task<Guid> WriteJobRunBeforeTheColumnAsync()
    {
        var run = Guid.NewGuid();
        await _host.QueryAsync(async db =>
        {
            var connection = db.Database.GetDbConnection();
            await connection.OpenAsync();
            await InsertAsync(connection, LedgerModel.Tasks, new()
            {
                ["Id"] = _job, ["Name"] = "Report", ["DispatchedAt"] = T0, ["IsSetAsStale"] = false, ["State"] = (int)TaskState.Succeeded,
                ["Start"] = T0, ["Stop"] = T0.AddSeconds(1), ["IsInternal"] = false,
            });
            await InsertAsync(connection, LedgerModel.Runs, new()
            {
                ["Id"] = run, ["TaskId"] = _job, ["Name"] = "Report", ["ConsumerType"] = "ReportConsumer", ["Start"] = T0,
                ["Stop"] = T0.AddSeconds(1), ["State"] = (int)TaskRunState.Succeeded, ["Retries"] = 0, ["Redelivered"] = false,
            });
            return 0;
        });
        return run;
    }

    private async Task InsertAsync(DbConnection connection, string table, Dictionary<string, object?> row)
    {
        await using var command = connection.CreateCommand();
        var names = row.Keys.ToList();
        command.CommandText = $"""INSERT INTO "{table}" ({string.Join(", ", names.Select(n => $"\"{n}\""))}) VALUES ({string.Join(", ", names.Select((_, i) => "@p" + i))})""";
        for (var i = 0; i < names.Count; i++)
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = "@p" + i;
            parameter.Value = Stored(row[names[i]]) ?? DBNull.Value;
            command.Parameters.Add(parameter);
        }

        await command.ExecuteNonQueryAsync();
    }

    private object? Stored(object? value) => provider != LedgerProvider.Sqlite ? value : value switch
    {
        Guid g => g.ToString().ToUpperInvariant(),
        DateTime d => d.ToString("yyyy-MM-dd HH:mm:ss.FFFFFFF", CultureInfo.InvariantCulture),
        bool b => b ? 1 : 0,
        _ => value,
    };

    private async Task<long> PartitionsAsync() => (await PartitionsWithTheColumnAsync()).Partitions;

    /// <summary>How many partitions the runs' table has, and how many of them have the column.</summary>
    private async Task<(long Partitions, long WithColumn)> PartitionsWithTheColumnAsync()
    {
        await using var connection = new NpgsqlConnection(_host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            $"""
            SELECT count(*), count(a.attname) FROM pg_inherits i
            LEFT JOIN pg_attribute a ON a.attrelid = i.inhrelid AND a.attname = 'JobRetryAttempt' AND NOT a.attisdropped
            WHERE i.inhparent = to_regclass('"{LedgerModel.Runs}"')
            """, connection);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }
}
