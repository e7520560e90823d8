using JobLog.Failures;
using JobLog.Testing;
using JobLog.Worker.Cli;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;

namespace JobLog.Worker.Tests;

/// <summary><c>retry</c> records a retry for the running worker to send; <c>resolve</c> marks failures resolved or archived.</summary>
[TestFixture]
public sealed class FailureCommandsTests
{
    [Test]
    public async Task RetryAndResolve_RecordTheActionsOnTheLedger()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var (kept, bare, other) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());
        await SeedFailedAsync(host, [kept], [bare, other]);
        string[] settings = ["--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString];
        var output = new StringWriter();

        var retried = await JobLog.Worker.Cli.Cli.RunAsync(["retry", kept.ToString(), bare.ToString(), "--no-wait", "--by", "alice", .. settings], CliConsole.Redirected(output), recordCommand: false);
        var resolved = await JobLog.Worker.Cli.Cli.RunAsync(["resolve", other.ToString(), "--archive", "--note", "known", .. settings], CliConsole.Redirected(output), recordCommand: false);

        Assert.That((retried, resolved), Is.EqualTo((0, 0)), output.ToString());
        Assert.That(output.ToString(), Does.Contain("1 queued, 1 skipped").And.Contain("archived 1, skipped 0"));
        var items = await host.QueryAsync(db => db.FailureActionItems.AsNoTracking().ToListAsync());
        Assert.That(items.Single(i => i.TaskId == kept).State, Is.EqualTo(FailureActionItemState.Pending));
        Assert.That(items.Single(i => i.TaskId == bare).Reason, Is.EqualTo("no kept message"));
        var task = await host.TaskAsync(other);
        Assert.That(task.Resolution, Is.EqualTo(FailureResolution.Archived));
        var action = await host.QueryAsync(db => db.FailureActions.AsNoTracking().SingleAsync(a => a.Kind == FailureActionKind.Archive));
        Assert.That((action.RequestedBy, action.Note), Is.EqualTo((Environment.UserName, "known")));
    }

    [TestCase("retry", "--no-wait")]
    [TestCase("resolve", "--archive")]
    public async Task RetryAndResolve_WhenEveryTaskIsSkipped_PrintEachWithItsReason_AndExitWith3(string command, string option)
    {
        // "0 queued, 2 skipped" said neither which nor why, and an id not in the ledger was "(not failed)"; and it exited 0,
        // so a script could not tell "nothing retried" from "retried" without reading the text.
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var (succeeded, missing) = (Guid.NewGuid(), Guid.NewGuid());
        await host.QueryAsync(db =>
        {
            db.TaskLogs.Add(new TaskLog { Id = succeeded, Name = "T", State = TaskState.Succeeded, DispatchedAt = DateTime.UtcNow });
            return db.SaveChangesAsync();
        });
        var output = new StringWriter();

        var exit = await JobLog.Worker.Cli.Cli.RunAsync(
            [command, succeeded.ToString(), missing.ToString(), option, "--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString],
            CliConsole.Redirected(output), recordCommand: false);

        Assert.That(exit, Is.EqualTo(3), output.ToString());
        var lines = output.ToString().Split('\n', StringSplitOptions.TrimEntries);
        Assert.That(lines, Does.Contain($"skipped {succeeded}: not failed").And.Contain($"skipped {missing}: not in the ledger"), output.ToString());
        var reasons = await host.QueryAsync(db => db.FailureActionItems.AsNoTracking().Where(i => i.TaskId == missing).Select(i => i.Reason).ToListAsync());
        Assert.That(reasons, Is.EqualTo(new[] { "not in the ledger" }));
    }

    [Test]
    public async Task Retry_WhenTheWorkerSkipsEveryQueuedTask_ExitsWith3()
    {
        // Queued, then skipped by the running worker's sender when its turn came (its kept message deleted in the meantime):
        // "sent 0, skipped 1, failed 0" exited 0 as if the task had been sent again.
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var task = Guid.NewGuid();
        await SeedFailedAsync(host, [task], []);
        string[] settings = ["--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString];
        var output = new StringWriter();
        var retry = JobLog.Worker.Cli.Cli.RunAsync(["retry", task.ToString(), .. settings], CliConsole.Redirected(output), recordCommand: false);
        using (var bound = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            while (!await host.QueryAsync(db => db.FailureActionItems.AnyAsync(i => i.TaskId == task && i.State == FailureActionItemState.Pending)))
            {
                Assert.That(retry.IsCompleted, Is.False, "retry ended before it queued the task: " + output);
                await Task.Delay(50, bound.Token);
            }
        }

        var deleted = await JobLog.Worker.Cli.Cli.RunAsync(["resolve", task.ToString(), "--delete-kept", .. settings], CliConsole.Redirected(new StringWriter()), recordCommand: false);
        await using var worker = WorkerApp.Build(["--urls=http://127.0.0.1:0", "--Logging:LogLevel:Default=Warning", .. settings]);
        await worker.StartAsync();
        var exit = await retry.WaitAsync(TimeSpan.FromSeconds(60));
        await worker.StopAsync();

        Assert.That((deleted, exit), Is.EqualTo((0, 3)), output.ToString());
        Assert.That(output.ToString(), Does.Contain("sent 0, skipped 1, failed 0"));
    }

    [TestCase("retry", "not-a-task-id", "--no-wait")]
    [TestCase("resolve", "not-a-task-id")]
    [TestCase("resolve", "00000000-0000-0000-0000-00000000000x", "--archive")]
    public async Task RetryAndResolve_WithATaskIdThatIsNotOne_ExitWith2_AndRecordNoAction(params string[] args)
    {
        await AssertRefusedAsync(args, args[1]);
    }

    [Test]
    public async Task Resolve_WithANoteLongerThanTheDashboardAllows_ExitsWith2_AndRecordsNoAction() =>
        await AssertRefusedAsync(["resolve", Guid.NewGuid().ToString(), "--note", new string('n', 2_001)], "--note");

    [TestCase("retry", "--no-wait")]
    [TestCase("resolve", "--archive")]
    public async Task RetryAndResolve_OfMoreTasksThanOneActionTakes_ExitWith2_AndRecordNoAction(string command, string option)
    {
        // 40,000 ids (an outage's failures piped in) were one SQLite parameter each: 'too many SQL variables', exit 1.
        var ids = Enumerable.Range(0, 40_000).Select(_ => Guid.NewGuid().ToString()).ToArray();

        await AssertRefusedAsync([command, .. ids, option], "10,000");
    }

    /// <summary>FAILED tasks: <paramref name="kept"/> with a kept message each, <paramref name="bare"/> without.</summary>
    private static Task<int> SeedFailedAsync(LedgerHost host, Guid[] kept, Guid[] bare) => host.QueryAsync(db =>
    {
        foreach (var id in kept.Concat(bare))
        {
            db.TaskLogs.Add(new TaskLog { Id = id, Name = "T", State = TaskState.Failed, DispatchedAt = DateTime.UtcNow });
        }

        foreach (var id in kept)
        {
            db.KeptMessages.Add(new KeptMessageLog
            {
                Id = Guid.NewGuid(), TaskId = id, ConsumerType = "C", InputAddress = "loopback://localhost/q", KeptAt = DateTime.UtcNow, Protected = [1, 2, 3],
            });
        }

        return db.SaveChangesAsync();
    });

    private static async Task AssertRefusedAsync(string[] args, string said)
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var output = new StringWriter();
        var error = new StringWriter();

        var exit = await JobLog.Worker.Cli.Cli.RunAsync(
            [.. args, "--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString], CliConsole.Redirected(output, error), recordCommand: false);

        Assert.That(exit, Is.EqualTo(2), output.ToString());
        Assert.That(error.ToString(), Does.Contain(said));
        Assert.That(output.ToString(), Does.Not.Contain("skipped"));
        Assert.That(await host.QueryAsync(db => db.FailureActions.CountAsync()), Is.Zero, "no retry or resolve recorded");
    }
}
