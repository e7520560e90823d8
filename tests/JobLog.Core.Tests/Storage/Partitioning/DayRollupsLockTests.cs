using JobLog.Storage;
using JobLog.Storage.Partitioning;
using JobLog.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Partitioning;

/// <summary>
/// The day rollups added to a partitioned ledger that lacks them (<see cref="LedgerPartitioning.EnsureDayRollupsAsync(System.Data.Common.DbConnection, CancellationToken, ILogger)"/>)
/// take a lock on both tables: a bounded wait, logged and tried again, never a wait without end behind a writer.
/// </summary>
public class DayRollupsLockTests
{
    private static readonly DateTime T0 = new(2026, 3, 10, 12, 0, 0, DateTimeKind.Utc);

    [Test]
    public async Task EnsureDayRollups_BehindAWritersLock_GivesUpAfterItsAttempts_ThenSucceedsOnceTheLockIsGone()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(T0));
        await using var host = await LedgerHost.StartAsync(await TestLedger.PostgresAsync(), o => o.Partitioning.Enabled = true,
            services: s => s.AddSingleton<TimeProvider>(clock));
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await WithoutDayRollupsAsync(connection);

        // A writer's open transaction on the runs (ROW EXCLUSIVE conflicts with the SHARE ROW EXCLUSIVE lock taken).
        await using var writer = new NpgsqlConnection(host.Ledger.ConnectionString);
        await writer.OpenAsync();
        var batch = await writer.BeginTransactionAsync();
        await using (var command = new NpgsqlCommand($"LOCK TABLE \"{LedgerModel.Runs}\" IN ROW EXCLUSIVE MODE", writer, batch))
        {
            await command.ExecuteNonQueryAsync();
        }

        var log = new RetryLog();
        var attempt = LedgerPartitioning.EnsureDayRollupsAsync(connection, log, TimeSpan.FromMilliseconds(200), 3, CancellationToken.None);
        // Without a lock timeout the call waits as long as the writer's transaction lasts: here, for ever.
        var error = Assert.ThrowsAsync<PostgresException>(() => attempt.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.That(error!.SqlState, Is.EqualTo(PostgresErrorCodes.LockNotAvailable));
        Assert.That(log.Retries, Is.EqualTo(2), "two retries logged, the third failure goes to the caller");
        Assert.That(await ServesMinutesAsync(connection), Is.False, "rolled back");

        var again = LedgerPartitioning.EnsureDayRollupsAsync(connection, log, TimeSpan.FromMilliseconds(200), 1000, CancellationToken.None);
        while (log.Retries < 3 && !again.IsCompleted)
        {
            await Task.Delay(20);
        }

        await batch.RollbackAsync();
        await again.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.That(await ServesMinutesAsync(connection), Is.True);
    }

    [Test]
    public async Task EnsureDayRollups_DoesNotWaitForADaysPartitionHeldAsAnAutovacuumHoldsIt()
    {
        // Its lock holds the writers off while the rollups are made from the rows; the writers write through the two parents,
        // and nothing under it takes a partition but to read it (the triggers are statement triggers on the parents). A lock
        // without ONLY also took every partition, and waited for an autovacuum's (SHARE UPDATE EXCLUSIVE) on one of them.
        var clock = new FakeTimeProvider(new DateTimeOffset(T0));
        await using var host = await LedgerHost.StartAsync(await TestLedger.PostgresAsync(), o => o.Partitioning.Enabled = true,
            services: s => s.AddSingleton<TimeProvider>(clock));
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await WithoutDayRollupsAsync(connection);
        var day = PartitionDay.Suffix(PartitionDay.Of(T0));
        await using var watcher = new NpgsqlConnection(host.Ledger.ConnectionString);
        await watcher.OpenAsync();
        var (waited, _) = await PartitionHold.RunAsync(host.Ledger.ConnectionString, watcher, PartitionHold.Day(day), async () =>
        {
            await LedgerPartitioning.EnsureDayRollupsAsync(connection, null, TimeSpan.FromSeconds(30), 1, CancellationToken.None);
            return true;
        });
        Assert.That(waited, Is.False, "the rollups' lock waited for today's partitions");
        Assert.That(await ServesMinutesAsync(connection), Is.True);
    }

    private static async Task<bool> ServesMinutesAsync(NpgsqlConnection connection)
    {
        await using var command = new NpgsqlCommand(DayRollups.ServeMinutesSql, connection);
        return (bool)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>A ledger partitioned before the day rollups (session 7), as <c>LedgerPartitioningTests</c> makes one.</summary>
    private static async Task WithoutDayRollupsAsync(NpgsqlConnection connection)
    {
        await using var command = new NpgsqlCommand(
            $"DROP VIEW \"{LedgerRollups.Minutes}\", \"{RunRollups.Minutes}\"; " +
            $"CREATE TABLE \"{LedgerRollups.Minutes}\" (\"Minute\" timestamptz NOT NULL, \"State\" integer NOT NULL, \"Name\" varchar({LedgerModel.NameLength}) NOT NULL, " +
            "\"IsInternal\" boolean NOT NULL, \"Count\" bigint NOT NULL, PRIMARY KEY (\"Minute\", \"State\", \"Name\", \"IsInternal\")); " +
            $"CREATE TABLE \"{RunRollups.Minutes}\" (\"Minute\" timestamptz NOT NULL, \"Name\" varchar({LedgerModel.NameLength}) NOT NULL, \"Runs\" bigint NOT NULL, " +
            "\"TotalMilliseconds\" bigint NOT NULL, \"MaxMilliseconds\" bigint NOT NULL, PRIMARY KEY (\"Minute\", \"Name\")); " +
            $"TRUNCATE \"{LedgerRollups.Counts}\"; " + LedgerRollups.PostgreSqlDown + RunRollups.PostgreSqlDown + LedgerRollups.PostgreSqlUp + RunRollups.PostgreSqlUp +
            $"DROP TABLE \"{DayRollups.Tasks}\", \"{DayRollups.Runs}\"; " +
            "DROP TRIGGER \"JobLogTasks_Days_Insert\" ON \"JobLogTasks\"; DROP TRIGGER \"JobLogTasks_Days_Delete\" ON \"JobLogTasks\"; " +
            "DROP TRIGGER \"JobLogTasks_Days_Update\" ON \"JobLogTasks\"; DROP TRIGGER \"JobLogTaskRuns_Days_Insert\" ON \"JobLogTaskRuns\"; " +
            "DROP TRIGGER \"JobLogTaskRuns_Days_Delete\" ON \"JobLogTaskRuns\"; DROP TRIGGER \"JobLogTaskRuns_Days_Update\" ON \"JobLogTaskRuns\"", connection);
        await command.ExecuteNonQueryAsync();
        Assert.That(await ServesMinutesAsync(connection), Is.False);
    }

    private sealed class RetryLog : ILogger
    {
        private int _retries;

        public int Retries => Volatile.Read(ref _retries);

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Id == 4300)
            {
                Interlocked.Increment(ref _retries);
            }
        }
    }
}
