using System.Net;
using JobLog.AspNetCore.Dashboard;
using JobLog.Commands;
using JobLog.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Dashboard;

/// <summary>
/// The dashboard's reads are bounded and, on PostgreSQL, never take the connections of the ledger's own pool: a flood of
/// slow list requests (a large ledger, an unindexed filter) must not keep the writer, the heartbeat or the scheduler
/// from the database.
/// </summary>
public class DashboardReadsTests
{
    /// <summary>
    /// Every list query below waits on a lock another session holds (as slow queries on a large ledger hold their
    /// connections), more of them than the ledger's pool has connections. The writer shares that pool when the connection
    /// string sets <c>Max Auto Prepare</c> (0 behind a PgBouncer in transaction mode); its record must still be committed
    /// while they wait.
    /// </summary>
    [Test]
    public async Task ListRequestsThatHoldTheirConnections_DoNotKeepTheWriterFromTheLedger()
    {
        // No command timeout: the list queries wait for as long as the lock is held (with one, each gives its connection
        // back when it times out, and the writer gets it then).
        await using var locked = await LockedRequests.StartAsync(";Maximum Pool Size=3;Max Auto Prepare=0;Command Timeout=0");
        var (host, outside, transaction, ledger) = (locked.Host, locked.Outside, locked.Transaction, locked.Host.Ledger);

        var flood = Enumerable.Range(0, 12).Select(i => host.Client.GetAsync($"/joblog/api/requests/in?user=u{i}&limit=500")).ToList();
        // The requests past the slots are refused at once (429), before the others' queries reach the server: wait for those
        // queries, or for an answer that is not a refusal (the lock not holding them: the assertion below then fails).
        async Task<long> DashboardWaitingAsync()
        {
            await using var dashboard = new NpgsqlCommand(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = @db AND wait_event_type = 'Lock' AND application_name = 'JobLog dashboard'", outside);
            dashboard.Parameters.AddWithValue("db", ledger.DatabaseName!);
            return (long)(await dashboard.ExecuteScalarAsync())!;
        }

        await LedgerHost.EventuallyAsync(
            async () => await DashboardWaitingAsync() > 0 || flood.Any(f => f.IsCompletedSuccessfully && f.Result.StatusCode != HttpStatusCode.TooManyRequests),
            TimeSpan.FromSeconds(60),
            "the list queries wait on the lock");
        Assert.That(await DashboardWaitingAsync(), Is.GreaterThan(0), "the list queries wait in the dashboard's own sessions");

        var commands = host.Services.GetRequiredService<CommandLogger>();
        await commands.RunAsync("while-the-dashboard-waits", [], _ => Task.FromResult(0));
        await LedgerHost.EventuallyAsync(
            async () =>
            {
                await using var count = new NpgsqlCommand("SELECT count(*) FROM \"JobLogCommands\" WHERE \"Name\" = 'while-the-dashboard-waits' AND \"Stop\" IS NOT NULL", outside, transaction);
                return (long)(await count.ExecuteScalarAsync())! == 1;
            },
            TimeSpan.FromSeconds(60),
            "the command's record is committed while the list queries wait");

        await transaction.RollbackAsync();
        var answers = await Task.WhenAll(flood);
        Assert.Multiple(() =>
        {
            foreach (var answer in answers)
            {
                Assert.That(answer.StatusCode, Is.EqualTo(HttpStatusCode.OK).Or.EqualTo(HttpStatusCode.TooManyRequests));
                if (answer.StatusCode == HttpStatusCode.TooManyRequests)
                {
                    Assert.That(answer.Headers.RetryAfter?.Delta, Is.EqualTo(TimeSpan.FromSeconds(1)));
                }
            }
        });
    }

    /// <summary>
    /// A list query that takes longer than the command timeout (here: it waits on a lock) fails with EF Core's
    /// "transient failure" <see cref="InvalidOperationException"/> around the database's exception, not with the
    /// <c>DbException</c> itself: it is a 503 with <c>Retry-After</c>, as a database that is down is, not an unhandled error.
    /// </summary>
    [Test]
    public async Task AListQueryThatTimesOut_IsA503WithRetryAfter_NotAnUnhandledError()
    {
        await using var locked = await LockedRequests.StartAsync(";Command Timeout=1");
        var (host, transaction) = (locked.Host, locked.Transaction);

        foreach (var url in new[] { "/joblog/api/requests/in?user=u", "/joblog/requests/in?user=u" })
        {
            using var response = await host.Client.GetAsync(url);
            var body = await response.Content.ReadAsStringAsync();
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable), () => $"{url}: {body}");
            Assert.That(response.Headers.RetryAfter?.Delta, Is.Not.Null, url);
        }

        await transaction.RollbackAsync();
    }

    /// <summary>Every request that reads the ledger takes a slot; with none free it is refused at once, a 429 with <c>Retry-After</c>.</summary>
    [TestCase(LedgerProvider.Sqlite)]
    [TestCase(LedgerProvider.PostgreSql)]
    public async Task ReadingRequests_WhileEverySlotIsTaken_Are429WithRetryAfter_AndTheAssetsAreServed(LedgerProvider provider)
    {
        JobLogDashboardOptions options = null!;
        var ledger = provider == LedgerProvider.Sqlite ? TestLedger.Sqlite() : await TestLedger.PostgresAsync();
        await using var host = await DashboardHost.StartAsync(ledger, dashboard: o =>
        {
            o.MaxConcurrentQueries = 2;
            options = o;
        });
        var task = Rows.Task("Charge", DateTime.UtcNow.AddMinutes(-1));
        await host.SeedAsync(task);
        string[] reads =
        [
            "/joblog", "/joblog/api/overview", "/joblog/tasks", "/joblog/api/tasks", "/joblog/api/tasks?q=Charge", $"/joblog/tasks/{task.Id}",
            $"/joblog/api/tasks/{task.Id}", "/joblog/api/requests/in?user=u&limit=500", "/joblog/requests/out", "/joblog/api/commands",
            "/joblog/failures", "/joblog/api/failures", "/joblog/hosts", "/joblog/api/hosts",
        ];

        using (var first = options.Reads.TryEnter())
        using (var second = options.Reads.TryEnter())
        {
            using var third = options.Reads.TryEnter();
            Assert.That((first is not null, second is not null, third is null), Is.EqualTo((true, true, true)), "two slots, both taken");
            foreach (var url in reads)
            {
                using var busy = await host.Client.GetAsync(url);
                var body = await busy.Content.ReadAsStringAsync();
                Assert.That(busy.StatusCode, Is.EqualTo(HttpStatusCode.TooManyRequests), () => $"{url}: {body}");
                Assert.That(busy.Headers.RetryAfter?.Delta, Is.EqualTo(TimeSpan.FromSeconds(1)), url);
                Assert.That(busy.Content.Headers.ContentType?.MediaType, Is.EqualTo(url.Contains("/api/", StringComparison.Ordinal) ? "application/problem+json" : "text/plain"), url);
                Assert.That(body, Does.Contain("Too many dashboard requests are reading the ledger"), url);
            }

            using var asset = await host.Client.GetAsync("/joblog/assets/joblog.js");
            Assert.That(asset.StatusCode, Is.EqualTo(HttpStatusCode.OK), "the assets read no ledger");
        }

        foreach (var url in reads)
        {
            await host.GetStringAsync(url);
        }
    }

    /// <summary>
    /// Two dashboards of one application (one for readers, one for operators, say) read the ledger through one set of
    /// slots and one pool, of the larger of their <see cref="JobLogDashboardOptions.MaxConcurrentQueries"/>: a read past
    /// it is refused at once (429), whichever dashboard it asks. Each had its own slots: with equal sizes both dashboards'
    /// connection strings are one Npgsql pool, so the second one's read took its own slot and then queued for a connection
    /// the first one's reads held, until Npgsql's <c>Timeout</c> (15 s by default): a 503 after the wait, not a 429 at once.
    /// (With different sizes they were two pools: together more sessions than either bound.)
    /// </summary>
    [Test]
    public async Task TwoDashboards_ShareOneBound_AReadPastItIsRefusedAtOnce_NotQueuedForAConnection()
    {
        await using var locked = await LockedRequests.StartAsync(
            ";Command Timeout=0;Timeout=3",
            o => o.MaxConcurrentQueries = 1,
            (app, _) => app.MapJobLogDashboard("/ops", o => o.MaxConcurrentQueries = 1),
            ["/joblog/api/requests/in?user=z", "/ops/api/requests/in?user=z"]);
        var (host, outside, ledger) = (locked.Host, locked.Outside, locked.Host.Ledger);
        async Task<long> DashboardWaitingAsync()
        {
            await using var waiting = new NpgsqlCommand(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = @db AND wait_event_type = 'Lock' AND application_name = 'JobLog dashboard'", outside);
            waiting.Parameters.AddWithValue("db", ledger.DatabaseName!);
            return (long)(await waiting.ExecuteScalarAsync())!;
        }

        var held = host.Client.GetAsync("/joblog/api/requests/in?user=a");
        await LedgerHost.EventuallyAsync(
            async () => await DashboardWaitingAsync() == 1 || held.IsCompleted, TimeSpan.FromSeconds(60), "the first read waits on the lock");
        Assert.That(held.IsCompleted, Is.False, "the first read waits on the lock");

        using (var other = await host.Client.GetAsync("/ops/api/requests/in?user=b"))
        {
            var body = await other.Content.ReadAsStringAsync();
            Assert.That(other.StatusCode, Is.EqualTo(HttpStatusCode.TooManyRequests), body);
            Assert.That(other.Headers.RetryAfter?.Delta, Is.EqualTo(TimeSpan.FromSeconds(1)));
            Assert.That(body, Does.Contain(DashboardBusyException.Message429));
        }

        await locked.Transaction.RollbackAsync();
        using var first = await held;
        Assert.That(first.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        await host.GetStringAsync("/ops/api/requests/in?user=c");
    }

    /// <summary>
    /// A dashboard on a fresh PostgreSQL ledger whose connection string has <c>settings</c> added, and a session of its
    /// own (not pooled) that holds an exclusive lock on the inbound requests until its transaction ends.
    /// </summary>
    private sealed record LockedRequests(DashboardHost Host, NpgsqlConnection Outside, NpgsqlTransaction Transaction) : IAsyncDisposable
    {
        public static async Task<LockedRequests> StartAsync(
            string settings, Action<JobLogDashboardOptions>? dashboard = null, Action<WebApplication, RouteGroupBuilder>? map = null, string[]? warm = null)
        {
            var ledger = await TestLedger.PostgresAsync();
            var host = await DashboardHost.StartAsync(
                ledger, dashboard, services: b => b.Services.Configure<JobLogOptions>(o => o.UseNpgsql(ledger.ConnectionString + settings)), map: map);
            foreach (var url in warm ?? ["/joblog/api/requests/in"])
            {
                await host.GetStringAsync(url);
            }

            var outside = new NpgsqlConnection(ledger.ConnectionString + ";Pooling=false");
            await outside.OpenAsync();
            var transaction = await outside.BeginTransactionAsync();
            await using (var lockTable = new NpgsqlCommand("LOCK TABLE \"JobLogInputRequests\" IN ACCESS EXCLUSIVE MODE", outside, transaction))
            {
                await lockTable.ExecuteNonQueryAsync();
            }

            return new LockedRequests(host, outside, transaction);
        }

        public async ValueTask DisposeAsync()
        {
            await Transaction.DisposeAsync();
            await Outside.DisposeAsync();
            await Host.DisposeAsync();
        }
    }
}
