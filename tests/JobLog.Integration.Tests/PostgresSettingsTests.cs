using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Integration.Tests;

/// <summary>
/// The ledger under the application's own Npgsql settings (issue 10 item 8). The switch
/// <c>Npgsql.EnableLegacyTimestampBehavior</c> is process-wide, so these tests run the Worker as a process that sets it,
/// in a time zone other than UTC (process and database session) so that a timestamp read or compared in local time shows.
/// </summary>
[NonParallelizable]
public class PostgresSettingsTests
{
    private static readonly ProcessSettings Legacy = new(LegacyTimestampBehavior: true, TimeZone: "America/New_York");
    private readonly List<IAsyncDisposable> _cleanup = [];

    [TearDown]
    public async Task TearDown()
    {
        if (TestContext.CurrentContext.Result.Outcome.Status == NUnit.Framework.Interfaces.TestStatus.Failed)
        {
            foreach (var worker in _cleanup.OfType<WorkerProcess>())
            {
                await TestContext.Out.WriteLineAsync($"--- worker {worker.Name} (pid {worker.Pid}) ---\n{worker.Tail(80)}");
            }
        }

        for (var i = _cleanup.Count - 1; i >= 0; i--)
        {
            await _cleanup[i].DisposeAsync();
        }

        _cleanup.Clear();
    }

    private async Task<T> Keep<T>(T resource)
        where T : IAsyncDisposable
    {
        _cleanup.Add(resource);
        return await Task.FromResult(resource);
    }

    [Test]
    public async Task Worker_WithLegacyTimestampBehavior_CreatesItsLedger_RecordsInUtc_AndDeliversScheduledMessages()
    {
        var vhost = await Keep(await RabbitMqVhost.CreateAsync());
        var ledger = await Keep(await TestLedger.PostgresAsync());
        var worker = await Keep(await WorkerProcess.StartAsync("legacy", ledger, vhost, Legacy));
        await worker.WaitForOutputAsync("JobLog migrated the PostgreSql ledger schema", TimeSpan.FromSeconds(30));
        // The test process (default Npgsql settings) produces and reads: it migrates nothing, the schema is the Worker's.
        var producer = await Keep(await Producer.StartAsync(ledger, vhost));
        var published = NewId.NextGuid();
        var scheduled = NewId.NextGuid();
        var before = DateTime.UtcNow;
        var due = Microseconds(before.AddSeconds(3));

        await producer.Bus.Publish(new ChargeCard(1, 1m), x => x.MessageId = published);
        await producer.ScheduleAsync(new Uri("queue:charge-card"), [(scheduled, due, new ChargeCard(2, 2m))]);

        await LedgerHost.EventuallyAsync(
            async () => await producer.CountAsync(db => db.TaskLogs.CountAsync(t => (t.Id == published || t.Id == scheduled) && t.State == TaskState.Succeeded)) == 2,
            TimeSpan.FromSeconds(60),
            "the published and the scheduled task succeeded in the legacy-timestamp Worker");
        // The dispatcher marks the row Sent after the broker confirmed the send; the consumer may finish first.
        await LedgerHost.EventuallyAsync(
            async () => await producer.Host.QueryAsync(db => db.ScheduledMessages.AnyAsync(s => s.MessageId == scheduled && s.State == ScheduledMessageState.Sent)),
            TimeSpan.FromSeconds(30),
            "the scheduled message is marked sent");
        var after = DateTime.UtcNow;
        var tasks = (await producer.TasksAsync([published, scheduled])).ToDictionary(t => t.Id);
        var row = await producer.Host.QueryAsync(db => db.ScheduledMessages.AsNoTracking().SingleAsync(s => s.MessageId == scheduled));

        var run = tasks[published].Runs.Single();
        Assert.That(run.Start, Is.InRange(before.AddSeconds(-1), after), "the Worker's run start is UTC, not New York time");
        Assert.That(run.Stop, Is.InRange(run.Start, after));
        Assert.That(row.State, Is.EqualTo(ScheduledMessageState.Sent));
        Assert.That(row.ScheduledTime, Is.EqualTo(due), "the scheduler stored the due time in UTC");
        Assert.That(tasks[scheduled].Runs.Single().Start, Is.InRange(due, after), "delivered when due, not five hours early or late");
        Assert.That(worker.Output, Does.Not.Contain("could not write").And.Not.Contain("could not create or migrate").And.Not.Contain("Exception"));
    }

    [Test]
    public async Task Migrate_OnAnEmptyDatabase_CreatesTheSchema_AndRecordsItsOwnCommand([Values] bool legacyTimestamps)
    {
        var ledger = await Keep(await TestLedger.PostgresAsync());

        var (exitCode, output) = await WorkerProcess.RunCommandAsync("migrate", ledger, legacyTimestamps ? Legacy : null);

        Assert.That(exitCode, Is.Zero, output);
        Assert.That(output, Does.Contain("ledger schema is up to date").And.Not.Contain("Exception"));
        await using var connection = new NpgsqlConnection(ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT \"Name\", \"ExitCode\" FROM \"JobLogCommands\"", connection);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.That(await reader.ReadAsync(), Is.True, "the migrate command is in the ledger it created");
        Assert.That((reader.GetString(0), reader.GetInt32(1)), Is.EqualTo(("migrate", 0)));
    }

    [Test]
    public async Task Worker_WhoseMigrationFails_ReportsAMigrationFailure_NotAWriteFailure()
    {
        var vhost = await Keep(await RabbitMqVhost.CreateAsync());
        var ledger = await Keep(await TestLedger.PostgresAsync());
        await using (var connection = new NpgsqlConnection(ledger.ConnectionString))
        {
            // A table of the application's in the way of JobLog's first migration.
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("CREATE TABLE \"JobLogScheduledMessages\" (\"Id\" integer)", connection);
            await command.ExecuteNonQueryAsync();
        }

        var worker = await Keep(await WorkerProcess.StartAsync("blocked", ledger, vhost, startedWhen: "JobLog could not create or migrate the PostgreSql ledger schema"));
        await worker.WaitForOutputAsync("(attempt 2)", TimeSpan.FromSeconds(30));

        Assert.That(worker.Output, Does.Contain("relation \"JobLogScheduledMessages\" already exists"));
        Assert.That(worker.Output, Does.Not.Contain("could not write 0 records"));
    }

    private static DateTime Microseconds(DateTime time) => new(time.Ticks - time.Ticks % 10, DateTimeKind.Utc);
}
