using JobLog.Maintenance;
using JobLog.Querying;
using JobLog.Recording;
using JobLog.Storage;
using JobLog.Storage.PostgreSql;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.PostgreSql;

/// <summary>
/// The migration <c>ScaleHotRuns</c> (session 33) on a PostgreSQL ledger that existed before it, partitioned or not: the
/// ACTIVE runs already recorded enter the side table of open runs, the runs' partial index by host goes, the runs (each
/// partition) get <see cref="OpenRuns.FillFactor"/>, and a run's finish becomes a HOT update; the host pass and the hosts
/// page find a gone host's runs through the side table; the <c>Down</c> puts the index back.
/// </summary>
[TestFixture(false)]
[TestFixture(true)]
public class HotRunsMigrationTests(bool partitioned)
{
    private static readonly DateTime T0 = DateTime.UtcNow.AddHours(-1);
    private readonly Guid _gone = Guid.NewGuid();
    private LedgerHost _host = null!;

    [SetUp]
    public async Task SetUp() =>
        _host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(LedgerProvider.PostgreSql), o => o.Partitioning.Enabled = partitioned, start: true);

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    [Test]
    public async Task ALedgerBefore_Upgraded_KeepsItsOpenRunsFindable_AndFinishesRunsInPlace()
    {
        await MigrateAsync(before: true);
        Assert.That(await ScalarAsync<long>($"SELECT count(*) FROM pg_indexes WHERE indexname = '{OpenRuns.FormerIndex}'"), Is.GreaterThan(0L), "the premise: the index before");
        var (oldTask, oldRun) = await StartRunAsync(_gone);
        var (_, finishedBefore) = await StartRunAsync(Guid.NewGuid());
        Assert.That(await HotUpdatesOfFinishingAsync(finishedBefore), Is.Zero, "before: a finish moves the partial index's entry (not HOT)");

        await MigrateAsync(before: false);
        Assert.That(await ScalarAsync<long>($"SELECT count(*) FROM pg_indexes WHERE indexname = '{OpenRuns.FormerIndex}'"), Is.Zero, "the partial index is gone");
        Assert.That(await OpenRunIdsAsync(), Is.EquivalentTo(new[] { oldRun }), "the ACTIVE run of a host recorded before is in the side table; the finished one is not");
        var (fills, withFill) = await FillFactorsAsync();
        Assert.That(withFill, Is.EqualTo(fills).And.GreaterThan(0L), partitioned ? "every partition of the runs has the fill factor" : "the runs have the fill factor");

        // A run started in one writer batch and finished in a later one: in the side table meanwhile, out of it at its finish.
        var (_, later) = await StartRunAsync(Guid.NewGuid());
        Assert.That(await OpenRunIdsAsync(), Is.EquivalentTo(new[] { oldRun, later }));
        var recorder = _host.Services.GetRequiredService<LedgerRecorder>();
        recorder.Enqueue(new RunFinished(later, (await TaskOfAsync(later)), TaskRunState.Succeeded, DateTime.UtcNow, null, null, null));
        await _host.FlushAsync();
        Assert.That(await OpenRunIdsAsync(), Is.EquivalentTo(new[] { oldRun }), "the writer's finish takes it out");

        var (_, hot) = await StartRunAsync(Guid.NewGuid());
        Assert.That(await HotUpdatesOfFinishingAsync(hot), Is.EqualTo(1L), "after: a finish is a HOT update (no run index names State, Stop or ErrorMessage)");

        // The gone host's run: the hosts page counts it, the host pass closes it through the side table.
        await _host.QueryAsync(async db =>
        {
            db.Hosts.Add(new HostLog { InstanceId = _gone, Name = "gone", ProcessId = 7, StartedAt = T0, LastHeartbeat = T0, StoppedAt = T0.AddMinutes(1) });
            return await db.SaveChangesAsync();
        });
        Assert.That(await ActiveOfGoneHostAsync(), Is.EqualTo(1));
        var sweep = await _host.Services.GetRequiredService<LedgerMaintenance>().SweepAsync();
        Assert.That(sweep.HostRuns, Is.EqualTo(1));
        var closed = await _host.QueryAsync(db => db.TaskRunLogs.AsNoTracking().SingleAsync(r => r.Id == oldRun));
        Assert.That(closed.State, Is.EqualTo(TaskRunState.Expired));
        Assert.That(closed.ErrorMessage, Does.StartWith($"Expired: host gone (pid 7, instance {_gone}) stopped at"));
        Assert.That((await _host.QueryAsync(db => db.TaskLogs.AsNoTracking().SingleAsync(t => t.Id == oldTask))).State, Is.EqualTo(TaskState.Expired));
        Assert.That(await OpenRunIdsAsync(), Is.Empty, "the closed run left the side table");
        Assert.That(await ActiveOfGoneHostAsync(), Is.Zero);

        // And back: the Down puts the partial index back and drops the side table.
        await MigrateAsync(before: true);
        Assert.That(await ScalarAsync<long>($"SELECT count(*) FROM pg_indexes WHERE indexname = '{OpenRuns.FormerIndex}'"), Is.GreaterThan(0L), "reverted: the index is back");
        Assert.That(await ScalarAsync<bool>($"SELECT to_regclass('\"{OpenRuns.Table}\"') IS NULL"), Is.True, "reverted: no side table");
    }

    [Test]
    public async Task APartitionMadeLater_HasTheFillFactor()
    {
        Assume.That(partitioned, Is.True);
        await using var connection = new NpgsqlConnection(_host.Ledger.ConnectionString);
        await connection.OpenAsync();
        var far = JobLog.Storage.Partitioning.PartitionDay.Of(DateTime.UtcNow.AddDays(40));
        await JobLog.Storage.Partitioning.LedgerPartitioning.EnsureAheadAsync(connection, DateTime.UtcNow.AddDays(40), 0, CancellationToken.None);
        var name = $"{LedgerModel.Runs}_{JobLog.Storage.Partitioning.PartitionDay.Suffix(far)}";
        Assert.That(await ScalarAsync<string?>($"SELECT array_to_string(reloptions, ',') FROM pg_class WHERE relname = '{name}'"), Is.EqualTo($"fillfactor={OpenRuns.FillFactor}"));
        Assert.That(await ScalarAsync<string?>($"SELECT array_to_string(reloptions, ',') FROM pg_class WHERE relname = '{LedgerModel.Tasks}_{JobLog.Storage.Partitioning.PartitionDay.Suffix(far)}'"), Is.Null, "the tasks' partitions keep the default");
    }

    /// <summary>Migrates to the migration before <c>ScaleHotRuns</c> (<paramref name="before"/>), or to the newest.</summary>
    private Task MigrateAsync(bool before) => _host.QueryAsync(async db =>
    {
        var migrations = db.Database.GetMigrations().ToList();
        var index = migrations.FindIndex(m => m.EndsWith("_ScaleHotRuns", StringComparison.Ordinal));
        Assert.That(index, Is.GreaterThan(0));
        await db.GetService<IMigrator>().MigrateAsync(before ? migrations[index - 1] : migrations[^1]);
        return 0;
    });

    /// <summary>A task and its ACTIVE run of <paramref name="instance"/>, committed by the writer.</summary>
    private async Task<(Guid Task, Guid Run)> StartRunAsync(Guid instance)
    {
        var task = new TaskPayload { Id = Guid.CreateVersion7(), Name = "Charge", DispatchedAt = T0 };
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = task.Id, Name = "Charge", ConsumerType = "ChargeConsumer", Start = T0.AddSeconds(1), HostInstanceId = instance };
        _host.Services.GetRequiredService<LedgerRecorder>().Enqueue(new RunStarted(run, task, false));
        await _host.FlushAsync();
        return (task.Id, run.Id);
    }

    private Task<Guid> TaskOfAsync(Guid run) => _host.QueryAsync(db => db.TaskRunLogs.AsNoTracking().Where(r => r.Id == run).Select(r => r.TaskId).SingleAsync());

    /// <summary>How many of one UPDATE that finishes <paramref name="run"/> (as the sweeper's does) were HOT, read in its transaction.</summary>
    private async Task<long> HotUpdatesOfFinishingAsync(Guid run)
    {
        await using var connection = new NpgsqlConnection(_host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await using (var update = new NpgsqlCommand(
            $"UPDATE \"{LedgerModel.Runs}\" SET \"State\" = 5, \"Stop\" = now(), \"ErrorMessage\" = 'Expired: test.' WHERE \"Id\" = @id", connection, transaction))
        {
            update.Parameters.AddWithValue("id", run);
            Assert.That(await update.ExecuteNonQueryAsync(), Is.EqualTo(1));
        }

        await using var hot = new NpgsqlCommand(
            $"SELECT coalesce(sum(n_tup_hot_upd), 0)::bigint FROM pg_stat_xact_user_tables WHERE relname LIKE '{LedgerModel.Runs}%'", connection, transaction);
        var count = (long)(await hot.ExecuteScalarAsync())!;
        await transaction.CommitAsync();
        return count;
    }

    private Task<List<Guid>> OpenRunIdsAsync() => ListAsync<Guid>($"SELECT \"RunId\" FROM \"{OpenRuns.Table}\"");

    /// <summary>The runs' tables with storage (the table, or each partition) and how many of them have the fill factor.</summary>
    private async Task<(long Tables, long WithFill)> FillFactorsAsync()
    {
        var options = await ListAsync<string>(
            $"SELECT coalesce(array_to_string(c.reloptions, ','), '') FROM pg_class c WHERE c.oid IN (SELECT relid FROM pg_partition_tree('\"{LedgerModel.Runs}\"') WHERE isleaf) " +
            $"OR (c.oid = '\"{LedgerModel.Runs}\"'::regclass AND c.relkind = 'r')");
        return (options.Count, options.Count(o => o == $"fillfactor={OpenRuns.FillFactor}"));
    }

    private async Task<int> ActiveOfGoneHostAsync()
    {
        await using var scope = _host.Services.CreateAsyncScope();
        var hosts = await scope.ServiceProvider.GetRequiredService<LedgerQueries>().HostsAsync(new HostFilter(), TimeSpan.FromSeconds(15), TimeSpan.FromMinutes(2), DateTime.UtcNow, CancellationToken.None);
        return hosts.Items.Single(h => h.InstanceId == _gone).ActiveRuns;
    }

    private async Task<T> ScalarAsync<T>(string sql) => (await ListAsync<T>(sql)).Single();

    private async Task<List<T>> ListAsync<T>(string sql)
    {
        await using var connection = new NpgsqlConnection(_host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync();
        var list = new List<T>();
        while (await reader.ReadAsync())
        {
            list.Add(reader.IsDBNull(0) ? default! : reader.GetFieldValue<T>(0));
        }

        return list;
    }
}
