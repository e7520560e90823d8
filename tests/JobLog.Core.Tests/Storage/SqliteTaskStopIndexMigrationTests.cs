using JobLog.Maintenance;
using JobLog.Retention;
using JobLog.Storage;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage;

/// <summary>
/// The migration <c>SqliteTaskStopIndex</c> (session 35): a SQLite ledger upgraded from the migration before it loses
/// <c>IX_JobLogTasks_Stop</c> (each task written paid an entry in it, each derivation a move, and no query needs it) and
/// its failures' retention still deletes what it should; PostgreSQL keeps the index (its migrations do not change).
/// </summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class SqliteTaskStopIndexMigrationTests(LedgerProvider provider)
{
    private const string Index = "IX_JobLogTasks_Stop";
    private LedgerHost _host = null!;

    [SetUp]
    public async Task SetUp() => _host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider));

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    [Test]
    public async Task TheTaskStopIndex_OnSqliteOnly_IsDroppedFromAnExistingLedger_AndRetentionStillDeletesOldFailures()
    {
        if (provider == LedgerProvider.PostgreSql)
        {
            Assert.That(await IndexExistsAsync(), Is.True, "PostgreSQL keeps the index");
            return;
        }

        Assert.That(await IndexExistsAsync(), Is.False, "a new ledger is migrated without it");
        await MigrateAsync(before: true);
        Assert.That(await IndexExistsAsync(), Is.True, "the ledger before the migration has it (the migration's Down)");

        var old = DateTime.UtcNow.AddDays(-40);
        var failed = Guid.NewGuid();
        var recent = Guid.NewGuid();
        await _host.QueryAsync(async db =>
        {
            db.TaskLogs.AddRange(
                new TaskLog { Id = failed, Name = "Charge", DispatchedAt = old, State = TaskState.Failed, Start = old, Stop = old.AddSeconds(1) },
                new TaskLog { Id = recent, Name = "Charge", DispatchedAt = DateTime.UtcNow, State = TaskState.Failed, Start = DateTime.UtcNow, Stop = DateTime.UtcNow });
            return await db.SaveChangesAsync();
        });

        await MigrateAsync(before: false);
        Assert.That(await IndexExistsAsync(), Is.False, "the upgrade drops it");

        var cutoff = DateTime.UtcNow.AddDays(-30);
        await using (var scope = _host.Services.CreateAsyncScope())
        {
            var purge = await scope.ServiceProvider.GetRequiredService<LedgerMaintenance>().PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, cutoff, cutoff));
            Assert.That(purge.Deleted, Is.EqualTo(1));
        }

        var left = await _host.QueryAsync(db => db.TaskLogs.AsNoTracking().Select(t => t.Id).ToListAsync());
        Assert.That(left, Is.EqualTo(new[] { recent }), "the old failure deleted, the recent one kept");
    }

    /// <summary>Migrates to the migration before <c>SqliteTaskStopIndex</c> (<paramref name="before"/>), or to the newest.</summary>
    private Task MigrateAsync(bool before) => _host.QueryAsync(async db =>
    {
        var migrations = db.Database.GetMigrations().ToList();
        var index = migrations.FindIndex(m => m.EndsWith("_SqliteTaskStopIndex", StringComparison.Ordinal));
        Assert.That(index, Is.GreaterThan(0));
        await db.GetService<IMigrator>().MigrateAsync(before ? migrations[index - 1] : migrations[^1]);
        return 0;
    });

    private Task<bool> IndexExistsAsync() => _host.QueryAsync(async db =>
    {
        var sql = provider == LedgerProvider.Sqlite
            ? $"SELECT count(*) AS \"Value\" FROM sqlite_master WHERE type = 'index' AND name = '{Index}'"
            : $"SELECT count(*)::int AS \"Value\" FROM pg_indexes WHERE indexname = '{Index}'";
        return await db.Database.SqlQueryRaw<int>(sql).SingleAsync() == 1;
    });
}
