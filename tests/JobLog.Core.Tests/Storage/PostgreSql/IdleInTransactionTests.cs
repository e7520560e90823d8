using JobLog.Recording;
using JobLog.Storage;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.PostgreSql;

/// <summary>
/// A JobLog session left idle in a transaction by a process that froze or lost its network keeps its locks: the server
/// ends it after <see cref="JobLogOptions.IdleInTransactionTimeout"/>, and the other processes get through (session 23).
/// </summary>
public class IdleInTransactionTests
{
    [Test]
    public async Task AJobLogSessionLeftIdleInATransaction_HoldingATasksRow_IsEnded_AndAnotherProcesssWriterGetsThrough()
    {
        await using var ledger = await TestLedger.PostgresAsync();
        Action<JobLogOptions> options = o =>
        {
            o.IdleInTransactionTimeout = TimeSpan.FromSeconds(2);
            o.CommandTimeout = TimeSpan.FromSeconds(60);
        };
        await using var frozen = await LedgerHost.StartAsync(ledger, options);
        var id = Guid.NewGuid();
        frozen.Services.GetRequiredService<LedgerRecorder>().Enqueue(
            new TaskDispatched(new TaskPayload { Id = id, Name = "T", DispatchedAt = DateTime.UtcNow }));
        await frozen.FlushAsync();

        await using var other = await LedgerHost.StartAsync(ledger, options);

        // A session of the first process, as its writer or sweeper opens it, locks the task's row in a transaction, and
        // then nothing more comes from it: to the server, a process frozen (SIGSTOP, a paused VM) or cut off mid-transaction.
        var contexts = frozen.Services.GetRequiredService<JobLogContextFactory>();
        await using var held = (NpgsqlConnection)contexts.Database.CreateConnection(contexts.ConnectionString);
        await held.OpenAsync();
        await using (var lockRow = new NpgsqlCommand("BEGIN; SELECT 1 FROM \"JobLogTasks\" WHERE \"Id\" = @id FOR UPDATE", held))
        {
            lockRow.Parameters.AddWithValue("id", id);
            Assert.That(await lockRow.ExecuteScalarAsync(), Is.EqualTo(1));
        }

        // Another process consumes the task: its writer updates the same row, and must get through within the bound.
        var recorder = other.Services.GetRequiredService<LedgerRecorder>();
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = id, Name = "T", ConsumerType = "C", Start = DateTime.UtcNow };
        recorder.Enqueue(new RunStarted(run, new TaskPayload { Id = id, Name = "T", DispatchedAt = DateTime.UtcNow }, false));
        recorder.Enqueue(new RunFinished(run.Id, id, TaskRunState.Succeeded, DateTime.UtcNow, null, "done", null));
        Assert.That(await recorder.FlushAsync(TimeSpan.FromSeconds(30)), Is.True, "the other process's writer got past the frozen session's lock within 30 s");

        Assert.That((await other.TaskAsync(id)).State, Is.EqualTo(TaskState.Succeeded));
        var ended = Assert.ThrowsAsync<PostgresException>(async () =>
        {
            await using var command = new NpgsqlCommand("SELECT 1", held);
            await command.ExecuteScalarAsync();
        });
        Assert.That(ended!.SqlState, Is.EqualTo("25P03"), "the server ended the idle session (idle_in_transaction_session_timeout)");
    }

    [TestCase("", "1min")]
    [TestCase(";Options=-c jit=off", "1min")]
    [TestCase(";Options=-c idle_in_transaction_session_timeout=0", "0")]
    [TestCase(";Options='-c idle_in_transaction_session_timeout=5min'", "5min")]
    public async Task JobLogsSessions_HaveTheTimeout_UnlessTheConnectionStringSetsItsOwn(string setting, string expected)
    {
        await using var ledger = await TestLedger.PostgresAsync();
        var options = ledger.Apply(new JobLogOptions());
        var contexts = new JobLogContextFactory(Microsoft.Extensions.Options.Options.Create(new JobLogOptions().UseNpgsql(options.ConnectionString + setting)));
        await using var session = (NpgsqlConnection)contexts.Database.CreateConnection(contexts.ConnectionString);
        await session.OpenAsync();
        await using var show = new NpgsqlCommand("SHOW idle_in_transaction_session_timeout", session);
        Assert.That(await show.ExecuteScalarAsync(), Is.EqualTo(expected));
    }

    /// <summary>
    /// Session 24: the startup option overrode what the operator set for the database or the role (<c>ALTER DATABASE … SET
    /// idle_in_transaction_session_timeout</c>): a client's startup options come after those in PostgreSQL's order. Now
    /// JobLog's writer looks once per server (its first session) and, when the operator set it, leaves its own out.
    /// </summary>
    [Test]
    public async Task ATimeoutTheOperatorSetOnTheDatabase_IsKept_NotOverriddenByJobLogsDefault()
    {
        await using var ledger = await TestLedger.PostgresAsync();
        await using (var admin = new NpgsqlConnection(ledger.ConnectionString))
        {
            await admin.OpenAsync();
            await using var alter = new NpgsqlCommand($"ALTER DATABASE \"{admin.Database}\" SET idle_in_transaction_session_timeout = '7s'", admin);
            await alter.ExecuteNonQueryAsync();
        }

        await using var host = await LedgerHost.StartAsync(ledger);
        var id = Guid.NewGuid();
        host.RecordDispatch(id);
        await host.FlushAsync();
        await using var session = (NpgsqlConnection)await host.OpenJobLogSessionAsync();
        await using var show = new NpgsqlCommand("SHOW idle_in_transaction_session_timeout", session);
        Assert.That(await show.ExecuteScalarAsync(), Is.EqualTo("7s"), "the database's setting, not JobLog's 1min");
        await using var context = host.Services.GetRequiredService<JobLogContextFactory>().Create();
        Assert.That(await context.Database.SqlQueryRaw<string>("SELECT current_setting('idle_in_transaction_session_timeout') AS \"Value\"").SingleAsync(), Is.EqualTo("7s"), "a context's session");
    }

    [Test]
    public void AZeroTimeout_LeavesTheConnectionStringAlone()
    {
        const string connectionString = "Host=db;Database=app;Username=alice";
        Assert.That(LedgerDatabase.For(LedgerProvider.PostgreSql).ForSessions(connectionString, TimeSpan.Zero), Is.EqualTo(connectionString));
        Assert.That(LedgerDatabase.For(LedgerProvider.Sqlite).ForSessions("Data Source=a.db", TimeSpan.FromMinutes(1)), Is.EqualTo("Data Source=a.db"));
    }
}
