using JobLog.Failures;
using JobLog.Querying;
using JobLog.Recording;
using JobLog.Storage;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Querying;

/// <summary>
/// The failures' reads and actions against another transaction that holds rows they want and then wants rows they hold,
/// as the writer's and the sweeper's batches do (PostgreSQL). The failures list's fill of the groups (<see cref="LedgerQueries.FillFailureGroupsAsync(CancellationToken)"/>) against
/// another transaction that holds rows it wants and then wants rows it holds, as the writer's and the sweeper's batches
/// do (PostgreSQL). It was a deadlock (<c>40P01</c>): the failures page failed, or the writer's batch was the one aborted
/// (<c>PgBouncerTests.TheWriterTheFailuresListAndTheSweeper…</c>, 1 run in 3 under load). The fill now never waits on a
/// task row (it skips those locked) nor long on anything else, and gives up its batch instead (the page reads the
/// failures' text, as for a fill that found a row changed).
/// </summary>
public class FailureLockTests
{
    private static readonly DateTime T0 = new(2026, 3, 10, 12, 0, 0, DateTimeKind.Utc);

    private const string Declined = "Shop.DeclinedException: Declined\n   at Shop.Charge.Handle(ConsumeContext c) in /src/Charge.cs:line 12";

    private const int Failures = 21;

    /// <summary>The other transaction holds one unfilled failure's row (the middle one by id), then updates the others.</summary>
    [TestCase(false)]
    [TestCase(true)]
    public Task FailuresRead_WhileAnotherTransactionHoldsAnUnfilledFailure_ThenUpdatesTheOthers_NeitherIsAborted(bool partitioned) =>
        AgainstAnotherTransactionAsync(partitioned, resolvedByTheOther: 0, (filled, unfilled) =>
            ($"UPDATE \"JobLogTasks\" SET \"Resolution\" = \"Resolution\" WHERE \"Id\" = '{unfilled[unfilled.Count / 2]}'",
             $"UPDATE \"JobLogTasks\" SET \"Resolution\" = \"Resolution\" WHERE \"Id\" IN ({In(unfilled.Where((_, i) => i != unfilled.Count / 2))})"));

    /// <summary>
    /// The other transaction resolves a grouped failure of the same group (so it holds that group's counts), then updates
    /// the unfilled failures: the fill, which holds those and wants the counts in its trigger, must not wait for it.
    /// </summary>
    [TestCase(false)]
    [TestCase(true)]
    public Task FailuresRead_WhileAnotherTransactionHoldsTheirGroupsCounts_ThenUpdatesTheUnfilledFailures_NeitherIsAborted(bool partitioned) =>
        AgainstAnotherTransactionAsync(partitioned, resolvedByTheOther: 1, (filled, unfilled) =>
            ($"UPDATE \"JobLogTasks\" SET \"Resolution\" = {(int)FailureResolution.Resolved} WHERE \"Id\" = '{filled[0]}'",
             $"UPDATE \"JobLogTasks\" SET \"Resolution\" = \"Resolution\" WHERE \"Id\" IN ({In(unfilled)})"));

    /// <summary>
    /// An operator resolves (or archives) failures while another transaction holds their group's counts (it resolved one of
    /// them) and then updates them: PostgreSQL aborts one of the two. The operator's action is done all the same (taken
    /// again); the other transaction, when it is the one aborted, is rolled back, as the writer's batch would be and
    /// written again.
    /// </summary>
    [TestCase(FailureResolution.Resolved)]
    [TestCase(FailureResolution.Archived)]
    public async Task Resolve_WhileAnotherTransactionHoldsTheirGroupsCounts_ThenUpdatesThem_TheResolveIsDone(FailureResolution resolution)
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(T0));
        await using var host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(LedgerProvider.PostgreSql), services: s => s.AddSingleton<TimeProvider>(clock));
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var ids = Enumerable.Range(0, Failures).Select(i => Guid.CreateVersion7(new DateTimeOffset(T0.AddMinutes(-30 + i)))).ToList();
        foreach (var (id, i) in ids.Select((id, i) => (id, i)))
        {
            Fail(recorder, id, T0.AddMinutes(-30 + i));
        }

        await host.FlushAsync();
        await host.QueryAsync(db => new LedgerQueries(db, LedgerDatabase.For(LedgerProvider.PostgreSql)).FillFailureGroupsAsync(default));
        var asked = ids.Skip(1).ToList();

        await using var other = new NpgsqlConnection(host.Ledger.ConnectionString);
        await other.OpenAsync();
        await using var transaction = await other.BeginTransactionAsync();
        await ExecuteAsync(other, transaction, $"UPDATE \"JobLogTasks\" SET \"Resolution\" = {(int)FailureResolution.Resolved} WHERE \"Id\" = '{ids[0]}'");
        var resolve = host.Services.GetRequiredService<IFailureActions>().ResolveAsync(new FailureActionRequest(asked, "alice"), resolution);
        await LedgerHost.EventuallyAsync(async () => resolve.IsCompleted || await LockWaitsAsync(host, other.ProcessID) > 0,
            because: "the resolve done, or waiting on the other transaction's lock");

        var otherCommitted = true;
        try
        {
            await ExecuteAsync(other, transaction, $"UPDATE \"JobLogTasks\" SET \"Resolution\" = \"Resolution\" WHERE \"Id\" IN ({In(asked)})");
            await transaction.CommitAsync();
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.DeadlockDetected)
        {
            // The other was the one aborted: rolled back, as the writer's batch would be.
            await transaction.RollbackAsync();
            otherCommitted = false;
        }

        // Before: "40P01: deadlock detected" from the resolve, most often (it waited first, so its check ran first).
        var receipt = await resolve;
        Assert.That(receipt.Accepted, Is.EqualTo(asked.Count), "the resolve's accepted tasks");
        var resolutions = await host.QueryAsync(db => db.TaskLogs.AsNoTracking().ToDictionaryAsync(t => t.Id, t => t.Resolution));
        Assert.That(asked.Select(id => resolutions[id]), Is.All.EqualTo(resolution), "the asked tasks' resolution");
        Assert.That(resolutions[ids[0]], Is.EqualTo(otherCommitted ? FailureResolution.Resolved : null), "the other transaction's resolve of the first");
        var (stored, text) = await host.QueryAsync(async db => (
            await new LedgerQueries(db, LedgerDatabase.For(LedgerProvider.PostgreSql)).FailureGroupsAsync(new FailureFilter(), T0, default),
            await new LedgerQueries(db, LedgerDatabase.For(LedgerProvider.PostgreSql)) { GroupsFromText = true }.FailureGroupsAsync(new FailureFilter(), T0, default)));
        Assert.That(stored.Groups.Select(g => (g.Id, g.Count)), Is.EqualTo(text.Groups.Select(g => (g.Id, g.Count))), "the groups' counts");
        Assert.That(stored.Total, Is.EqualTo(otherCommitted ? 0 : 1), "the open failures left");
    }

    private static async Task AgainstAnotherTransactionAsync(bool partitioned, int resolvedByTheOther, Func<List<Guid>, List<Guid>, (string First, string Then)> statements)
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(T0));
        await using var host = partitioned
            ? await PartitionedLedgerHosts.StartAsync(clock)
            : await LedgerHost.StartAsync(await Ledgers.CreateAsync(LedgerProvider.PostgreSql), services: s => s.AddSingleton<TimeProvider>(clock));
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var ids = Enumerable.Range(0, Failures + 2).Select(i => Guid.CreateVersion7(new DateTimeOffset(T0.AddMinutes(-30 + i)))).ToList();
        foreach (var (id, i) in ids.Select((id, i) => (id, i)))
        {
            Fail(recorder, id, T0.AddMinutes(-30 + i));
        }

        await host.FlushAsync();
        var filled = ids.Take(2).ToList();
        var unfilled = ids.Skip(2).Order().ToList();
        // Filled (the two grouped, their counts kept), then the others' groups cleared, as for failures written since the
        // last read.
        await host.QueryAsync(db => new LedgerQueries(db, LedgerDatabase.For(LedgerProvider.PostgreSql)).FillFailureGroupsAsync(default));
        await using var other = new NpgsqlConnection(host.Ledger.ConnectionString);
        await other.OpenAsync();
        await ExecuteAsync(other, null,
            $"UPDATE \"JobLogTasks\" SET \"{FailureGroupColumns.Exception}\" = NULL, \"{FailureGroupColumns.Type}\" = NULL, " +
            $"\"{FailureGroupColumns.Queue}\" = NULL, \"{FailureGroupColumns.At}\" = NULL WHERE \"Id\" IN ({In(unfilled)})");
        var (first, then) = statements(filled, unfilled);

        await using var transaction = await other.BeginTransactionAsync();
        await ExecuteAsync(other, transaction, first);

        var read = host.QueryAsync(db => new LedgerQueries(db, LedgerDatabase.For(LedgerProvider.PostgreSql))
            .FailureGroupsAsync(new FailureFilter { By = FailureGrouping.Exception }, T0, default));
        // The fill is done, or waits on the other transaction's lock (before the fix: its locks held meanwhile).
        await LedgerHost.EventuallyAsync(async () => read.IsCompleted || await LockWaitsAsync(host, other.ProcessID) > 0,
            because: "the failures read done, or waiting on the other transaction's lock");

        // Before the fix PostgreSQL's deadlock check aborted one of the two here.
        Assert.That(async () => await ExecuteAsync(other, transaction, then), Throws.Nothing, "the other transaction's update");
        await transaction.CommitAsync();
        var groups = await read;
        // Read before the other's commit, or (its fill given up) from the text after it.
        Assert.That(groups.Total, Is.EqualTo(Failures + 2).Or.EqualTo(Failures + 2 - resolvedByTheOther), "the read's open failures");
        Assert.That(groups.Groups.Sum(g => g.Count), Is.EqualTo(groups.Total), "the read's groups hold its failures");

        // Afterwards the stored groups are filled and give what the text gives.
        var (stored, text) = await host.QueryAsync(async db => (
            await new LedgerQueries(db, LedgerDatabase.For(LedgerProvider.PostgreSql)).FailureGroupsAsync(new FailureFilter(), T0, default),
            await new LedgerQueries(db, LedgerDatabase.For(LedgerProvider.PostgreSql)) { GroupsFromText = true }.FailureGroupsAsync(new FailureFilter(), T0, default)));
        Assert.That(stored.Groups.Select(g => (g.Id, g.Count)), Is.EqualTo(text.Groups.Select(g => (g.Id, g.Count))));
        var left = await host.QueryAsync(db => db.TaskLogs.CountAsync(t =>
            t.State == TaskState.Failed && t.Resolution == null && EF.Property<string?>(t, FailureGroupColumns.Exception) == null));
        Assert.That(left, Is.Zero, "every open failure filled by the read after");
    }

    private static string In(IEnumerable<Guid> ids) => string.Join(", ", ids.Select(id => $"'{id}'"));

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction) { CommandTimeout = 120 };
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>The sessions of the ledger's database, other than <paramref name="other"/>, waiting on a lock.</summary>
    private static async Task<long> LockWaitsAsync(LedgerHost host, int other)
    {
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> @other", connection);
        command.Parameters.AddWithValue("other", other);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static void Fail(LedgerRecorder recorder, Guid id, DateTime at)
    {
        var task = new TaskPayload { Id = id, Name = "Charge", QueueName = "billing", DispatchedAt = at, EstimatedTimeOfFirstArrival = at };
        recorder.Enqueue(new TaskDispatched(task));
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = id, Name = "Charge", QueueName = "billing", ConsumerType = "C", Start = at.AddSeconds(1) };
        recorder.Enqueue(new RunStarted(run, task, false));
        recorder.Enqueue(new RunFinished(run.Id, id, TaskRunState.Failed, at.AddSeconds(2), Declined, null, null));
    }
}
