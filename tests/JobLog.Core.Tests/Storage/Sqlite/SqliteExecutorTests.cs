using System.Globalization;
using System.Text;
using JobLog.Storage;
using JobLog.Storage.Sqlite;
using JobLog.Testing;
using Microsoft.Data.Sqlite;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Sqlite;

public class SqliteExecutorTests
{
    [Test]
    public async Task Statement_WithAParameterLeftUnbound_FailsTheCommit_AndWritesNothing()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var ledger = host.Ledger;
        await using (var setup = new SqliteConnection(ledger.ConnectionString))
        {
            await setup.OpenAsync();
            await using var create = setup.CreateCommand();
            create.CommandText = "CREATE TABLE pairs (a TEXT, b TEXT)";
            await create.ExecuteNonQueryAsync();
        }

        var database = LedgerDatabase.For(LedgerProvider.Sqlite);
        await using var executor = await database.OpenAsync(ledger.ConnectionString, CancellationToken.None);
        var plan = new LedgerPlan(database);
        plan.Other.Add("INSERT INTO pairs (a, b) VALUES (@p0, @p1)", "first", "second");
        plan.Other.Add("INSERT INTO pairs (a, b) VALUES (@p0, @p1)", "only one value");

        var error = Assert.ThrowsAsync<InvalidOperationException>(() => executor.CommitAsync(plan, TimeSpan.FromSeconds(5), CancellationToken.None));

        Assert.That(error!.Message, Does.Contain("@p1"));
        await using var count = executor.Connection.CreateCommand();
        count.CommandText = "SELECT COUNT(*) FROM pairs";
        Assert.That(await count.ExecuteScalarAsync(), Is.EqualTo(0L));
    }

    [Test]
    public async Task Statement_WithAParameterNotNamedAfterItsPosition_IsRejectedWhenPrepared()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var ledger = host.Ledger;
        var database = LedgerDatabase.For(LedgerProvider.Sqlite);
        await using var executor = await database.OpenAsync(ledger.ConnectionString, CancellationToken.None);
        var plan = new LedgerPlan(database);
        plan.Other.Add("SELECT @p0, @value", 1);

        var error = Assert.ThrowsAsync<InvalidOperationException>(() => executor.CommitAsync(plan, TimeSpan.FromSeconds(5), CancellationToken.None));

        Assert.That(error!.Message, Does.Contain("@value"));
    }

    [Test]
    public async Task Statement_GivenAValueForAParameterItDoesNotHave_FailsTheCommit()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var ledger = host.Ledger;
        var database = LedgerDatabase.For(LedgerProvider.Sqlite);
        await using var executor = await database.OpenAsync(ledger.ConnectionString, CancellationToken.None);
        var plan = new LedgerPlan(database);
        plan.Other.Add("SELECT @p0", 1, "one too many");

        var error = Assert.ThrowsAsync<InvalidOperationException>(() => executor.CommitAsync(plan, TimeSpan.FromSeconds(5), CancellationToken.None));

        Assert.That(error!.Message, Does.Contain("@p1"));
    }

    [Test]
    public async Task Commit_WithPhaseTicks_TimesBeginAndCommitEachOnceABatch_ApartFromTheStatements()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var ledger = host.Ledger;
        var database = LedgerDatabase.For(LedgerProvider.Sqlite);
        await using var executor = await database.OpenAsync(ledger.ConnectionString, CancellationToken.None);
        // A clock that moves one tick a read: a phase timed between two adjacent reads gets exactly one tick.
        var reads = 0L;
        var phases = new long[SqliteExecutor.CommitPhase + 1];
        executor.PhaseClock = () => ++reads;
        executor.PhaseTicks = phases;

        for (var batch = 0; batch < 3; batch++)
        {
            var plan = new LedgerPlan(database);
            plan.Other.Add("SELECT @p0", batch);
            await executor.CommitAsync(plan, TimeSpan.FromSeconds(5), CancellationToken.None);
        }

        Assert.Multiple(() =>
        {
            Assert.That(phases[SqliteExecutor.BeginPhase], Is.EqualTo(3), "BEGIN: once a batch");
            Assert.That(phases[SqliteExecutor.CommitPhase], Is.EqualTo(3), "COMMIT: once a batch");
            Assert.That(phases.Sum(), Is.LessThan(reads), "no tick counted twice");
        });
    }

    [Test]
    public void TimeText_IsWhatEfCoresFormatWrites_ForEveryFractionLength()
    {
        var times = new List<DateTime>
        {
            DateTime.MinValue,
            DateTime.MaxValue,
            new(5, 1, 2, 3, 4, 5, DateTimeKind.Utc),
            new(2026, 12, 5, 0, 0, 0, DateTimeKind.Utc),
            new DateTime(2026, 12, 5, 23, 59, 59, DateTimeKind.Utc).AddTicks(9_999_999),
        };
        for (var digits = 1; digits <= 7; digits++)
        {
            // A fraction whose last non-zero digit is the digits-th: 0.1, 0.01 … 0.0000001 s, and 0.1234567 cut there.
            times.Add(new DateTime(2026, 12, 5, 19, 45, 1, DateTimeKind.Utc).AddTicks((long)Math.Pow(10, 7 - digits)));
            times.Add(new DateTime(2026, 12, 5, 19, 45, 1, DateTimeKind.Utc).AddTicks(1_234_567 / (long)Math.Pow(10, 7 - digits) * (long)Math.Pow(10, 7 - digits)));
        }

        var random = new Random(28);
        for (var i = 0; i < 10_000; i++)
        {
            times.Add(new DateTime(random.NextInt64(DateTime.MinValue.Ticks, DateTime.MaxValue.Ticks), DateTimeKind.Utc));
        }

        Span<byte> text = stackalloc byte[SqliteLedgerDatabase.TimeLength];
        foreach (var time in times)
        {
            var written = SqliteLedgerDatabase.FormatTime(time, text);
            Assert.That(Encoding.UTF8.GetString(text[..written]), Is.EqualTo(time.ToString(SqliteLedgerDatabase.TimeFormat, CultureInfo.InvariantCulture)),
                $"ticks {time.Ticks}");
        }
    }
}
