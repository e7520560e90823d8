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
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage;

/// <summary>
/// A ledger written by JobLog's first release (its first migration, rows in that schema only) upgraded by starting the
/// current JobLog on it: every row kept and readable, the search, the failures, the overview and the writer working.
/// </summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class UpgradeFromInitialTests(LedgerProvider provider)
{
    private static readonly DateTime T0 = DateTime.UtcNow.AddHours(-2);
    private static readonly Guid Succeeded = Guid.NewGuid(), Failed = Guid.NewGuid(), Waiting = Guid.NewGuid();
    private static readonly Guid SucceededRun = Guid.NewGuid(), FailedRun = Guid.NewGuid();
    private LedgerHost _host = null!;

    [SetUp]
    public async Task SetUp() => _host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider), start: false);

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    [Test]
    public async Task ALedgerOfTheFirstRelease_StartedWithTodaysJobLog_KeepsEveryRow_AndEveryReadAndWriteWorks()
    {
        await WriteFirstReleaseLedgerAsync();

        await _host.Host.StartAsync();

        await LedgerHost.EventuallyAsync(
            async () => (await TasksAsync(new TaskFilter { Search = "order-4711" })).Count == 1,
            because: "the migrated ledger's search finds a task written before it had a search index");
        Assert.That((await TasksAsync(new TaskFilter { Search = "order-4711" })).Single().Id, Is.EqualTo(Succeeded));
        Assert.That((await TasksAsync(new TaskFilter())).Select(t => (t.Id, t.State, t.Runs)), Is.EquivalentTo(new[]
        {
            (Succeeded, TaskState.Succeeded, 1), (Failed, TaskState.Failed, 1), (Waiting, TaskState.Waiting, 0),
        }));
        Assert.That((await TasksAsync(new TaskFilter { Search = "card declined" })).Select(t => t.Id), Is.EqualTo(new[] { Failed }), "a run's error is searched too");

        await using (var scope = _host.Services.CreateAsyncScope())
        {
            var queries = scope.ServiceProvider.GetRequiredService<LedgerQueries>();
            var failures = await queries.FailuresAsync(new FailureFilter(), default);
            Assert.That(failures.Items.Select(f => (f.TaskId, f.Name)), Is.EqualTo(new[] { (Failed, "Charge") }), "the old failure is on the failures page");
            var detail = await queries.TaskAsync(Failed, default);
            Assert.That(detail, Is.Not.Null);
            var (counts, _, _) = await queries.OverviewAsync(false, DateTime.UtcNow, default);
            Assert.That(counts.Where(c => c.Count > 0).Select(c => (c.State, c.Count)), Is.EquivalentTo(new[]
            {
                (TaskState.Succeeded, 1L), (TaskState.Failed, 1L), (TaskState.Waiting, 1L),
            }), "the overview counts the old rows");
            var inputs = await queries.InputRequestsAsync(new RequestFilter(), default);
            var outputs = await queries.OutputRequestsAsync(new RequestFilter(), default);
            var commands = await queries.CommandsAsync(new CommandFilter(), default);
            Assert.That((inputs.Items.Count, outputs.Items.Count, commands.Items.Count), Is.EqualTo((1, 1, 1)));
            var output = await queries.OutputRequestAsync(outputs.Items.Single().Id, default);
            Assert.That(output, Is.Not.Null);
        }

        await AssertCountsEqualRowsAsync("after the upgrade");

        // The writer goes on on the upgraded ledger: the waiting task gets its run.
        var recorder = _host.Services.GetRequiredService<LedgerRecorder>();
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = Waiting, Name = "Report", ConsumerType = "ReportConsumer", Start = DateTime.UtcNow };
        recorder.Enqueue(new RunStarted(run, new TaskPayload { Id = Waiting, Name = "Report", DispatchedAt = T0 }, false));
        recorder.Enqueue(new RunFinished(run.Id, Waiting, TaskRunState.Succeeded, DateTime.UtcNow, null, null, null));
        await _host.FlushAsync();
        Assert.That((await _host.TaskAsync(Waiting)).State, Is.EqualTo(TaskState.Succeeded));
        await AssertCountsEqualRowsAsync("after a write on the upgraded ledger");
    }

    /// <summary>Migrates the empty ledger to the first migration only and writes rows with that schema's columns.</summary>
    private async Task WriteFirstReleaseLedgerAsync()
    {
        var contexts = _host.Services.GetRequiredService<JobLogContextFactory>();
        await using var db = contexts.Create();
        var first = db.Database.GetMigrations().First();
        Assert.That(first, Does.EndWith("_Initial"));
        await db.GetService<IMigrator>().MigrateAsync(first);
        var connection = db.Database.GetDbConnection();
        await connection.OpenAsync();

        await InsertAsync(connection, "JobLogTasks", new()
        {
            ["Id"] = Succeeded, ["Name"] = "Invoice", ["QueueName"] = "invoices", ["Input"] = """{"order":"order-4711"}""",
            ["DispatchedAt"] = T0, ["IsSetAsStale"] = false, ["State"] = (int)TaskState.Succeeded, ["Start"] = T0.AddSeconds(1),
            ["Stop"] = T0.AddSeconds(2), ["Host"] = "web-1",
        });
        await InsertAsync(connection, "JobLogTasks", new()
        {
            ["Id"] = Failed, ["Name"] = "Charge", ["QueueName"] = "charges", ["Input"] = """{"amount":10}""",
            ["DispatchedAt"] = T0.AddMinutes(1), ["IsSetAsStale"] = false, ["State"] = (int)TaskState.Failed,
            ["Start"] = T0.AddMinutes(1).AddSeconds(1), ["Stop"] = T0.AddMinutes(1).AddSeconds(3), ["ErrorMessage"] = "card declined",
        });
        await InsertAsync(connection, "JobLogTasks", new()
        {
            ["Id"] = Waiting, ["Name"] = "Report", ["DispatchedAt"] = T0.AddMinutes(2), ["IsSetAsStale"] = false, ["State"] = (int)TaskState.Waiting,
        });
        await InsertAsync(connection, "JobLogTaskRuns", new()
        {
            ["Id"] = SucceededRun, ["TaskId"] = Succeeded, ["Name"] = "Invoice", ["ConsumerType"] = "InvoiceConsumer", ["QueueName"] = "invoices",
            ["Start"] = T0.AddSeconds(1), ["Stop"] = T0.AddSeconds(2), ["State"] = (int)TaskRunState.Succeeded, ["Retries"] = 0,
            ["Redelivered"] = false, ["Output"] = "invoiced",
        });
        await InsertAsync(connection, "JobLogTaskRuns", new()
        {
            ["Id"] = FailedRun, ["TaskId"] = Failed, ["Name"] = "Charge", ["ConsumerType"] = "ChargeConsumer", ["QueueName"] = "charges",
            ["Start"] = T0.AddMinutes(1).AddSeconds(1), ["Stop"] = T0.AddMinutes(1).AddSeconds(3), ["State"] = (int)TaskRunState.Failed,
            ["Retries"] = 0, ["Redelivered"] = false, ["ErrorMessage"] = "card declined",
        });
        var input = Guid.NewGuid();
        await InsertAsync(connection, "JobLogInputRequests", new()
        {
            ["Id"] = input, ["Type"] = (int)InputRequestType.Common, ["Host"] = "shop.example", ["Method"] = "POST", ["Path"] = "/orders",
            ["IsSecure"] = true, ["RequestTimestamp"] = T0, ["Status"] = (int)RequestLogStatus.Info, ["ResponseCode"] = 201,
            ["ResponseTimestamp"] = T0.AddMilliseconds(40),
        });
        var output = Guid.NewGuid();
        await InsertAsync(connection, "JobLogOutputRequests", new()
        {
            ["Id"] = output, ["InputRequestId"] = input, ["Host"] = "psp.example", ["Method"] = "POST", ["Path"] = "/charges",
            ["IsSecure"] = true, ["RequestTimestamp"] = T0.AddMinutes(1).AddSeconds(2), ["Status"] = (int)RequestLogStatus.Error,
            ["ResponseCode"] = 402,
        });
        await InsertAsync(connection, "JobLogOutputRequestRelatedObjects", new()
        {
            ["Id"] = Guid.NewGuid(), ["OutputRequestId"] = output, ["TaskRunLogId"] = FailedRun,
        });
        await InsertAsync(connection, "JobLogCommands", new()
        {
            ["Id"] = Guid.NewGuid(), ["Name"] = "import", ["ExecutedFromCommandLine"] = true, ["Start"] = T0, ["Stop"] = T0.AddSeconds(5),
            ["IsSuccessful"] = true, ["ExitCode"] = 0,
        });
    }

    /// <summary>An INSERT of the columns given, each value stored as EF Core stores it on this provider.</summary>
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

    private async Task<IReadOnlyList<TaskRow>> TasksAsync(TaskFilter filter)
    {
        await using var scope = _host.Services.CreateAsyncScope();
        return (await scope.ServiceProvider.GetRequiredService<LedgerQueries>().TasksAsync(filter, default)).Items;
    }

    /// <summary>The overview's counts per state (the rollup) equal the rows they count.</summary>
    private async Task AssertCountsEqualRowsAsync(string when)
    {
        var rolled = await _host.QueryAsync(db => db.Set<TaskStateCount>().AsNoTracking().Where(c => c.Count != 0).ToListAsync());
        var rows = await _host.QueryAsync(db => db.TaskLogs.AsNoTracking().ToListAsync());
        Assert.That(
            rolled.Select(c => (c.State, c.Name, c.Count)),
            Is.EquivalentTo(rows.GroupBy(t => (t.State, t.Name)).Select(g => (g.Key.State, g.Key.Name, (long)g.Count()))),
            when);
    }
}
