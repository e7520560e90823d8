using JobLog.Failures.Alerts;
using JobLog.Querying;
using JobLog.Storage;
using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Storage;

/// <summary>
/// Session 32 (issue 13's connection-limit fault, the sibling of Core's IdleSessionsTests for a process with a bus): with
/// <c>UseTaskLogging</c> and the JobLog scheduler, the scheduler's dispatcher polls the ledger every
/// <c>PollInterval</c> and the retry sender every <c>Failures.RetryPollInterval</c>. Each kept its session idle in a pool
/// no other process can use, besides the writer's: with <c>max_connections</c> 4 two processes held every session and a
/// reconnecting writer or a starting process was refused (53300) for minutes. Between its polls a process with a bus keeps
/// no session but its writer's.
/// </summary>
[NonParallelizable]
public class IdleSessionsWithBusTests
{
    [Test]
    [CancelAfter(180_000)]
    public async Task BetweenTheSchedulersAndRetrySendersPolls_AProcessWithABusKeepsNoSessionButItsWriters()
    {
        await using var ledger = await TestLedger.PostgresAsync();
        await using var vhost = await RabbitMqVhost.CreateAsync();
        await using (var host = await LedgerHost.StartAsync(ledger, o =>
        {
            o.HeartbeatInterval = TimeSpan.FromSeconds(1);
            o.HostTimeout = TimeSpan.FromSeconds(30);
            o.Sweeper.Enabled = true;
            o.Sweeper.Interval = TimeSpan.FromSeconds(1);
            o.Failures.RetryPollInterval = TimeSpan.FromMilliseconds(500);
        }, services =>
        {
            services.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
            services.AddMassTransit(x =>
            {
                x.SetKebabCaseEndpointNameFormatter();
                x.AddJobLogScheduler(o => o.PollInterval = TimeSpan.FromMilliseconds(500));
                x.AddConsumer<ChargeCardConsumer>();
                x.UsingTestVhost(vhost);
            });
        }))
        {
            // The test's own look is not pooled: a pooled one would be a session of this process kept idle.
            await using var look = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(ledger.ConnectionString) { Pooling = false }.ConnectionString);
            await look.OpenAsync();
            await host.Services.GetRequiredService<IBus>().Publish(new ChargeCard(1, 1m));
            await LedgerHost.EventuallyAsync(async () =>
            {
                await using var succeeded = new NpgsqlCommand($"SELECT count(*) FROM \"JobLogTaskRuns\" WHERE \"State\" = {(int)TaskRunState.Succeeded}", look);
                return (long)(await succeeded.ExecuteScalarAsync())! == 1;
            }, TimeSpan.FromSeconds(60), "the message consumed and its run recorded");

            // Several polls of the scheduler and of the retry sender, beats and sweeps; then the fewest sessions of the
            // process seen over a few looks (a poll in flight at one look is not what is counted).
            await Task.Delay(TimeSpan.FromSeconds(4));
            var (fewest, seen) = await FewestSessionsAsync(look);
            TestContext.Out.WriteLine($"fewest sessions: {fewest}: {seen}");
            Assert.That(fewest, Is.LessThanOrEqualTo(1), "the writer's session only: " + seen);
        }
    }

    /// <summary>
    /// Session 33 (session 32's "found, not fixed"): the business path's sessions stayed pooled and idle for Npgsql's
    /// <c>Connection Idle Lifetime</c>, 300 s: the scheduler consumer's once a message was scheduled, the failed-message
    /// keeper's once a delivery failed, the reads' (the scoped context, the dashboard's pool), and the failure alerter's
    /// every 30 s (kept for good). A short while after the last of them the process keeps no session but its writer's.
    /// </summary>
    [Test]
    [CancelAfter(240_000)]
    public async Task AfterAScheduleAFailureAndReads_WithTheAlerterOn_AProcessSoonKeepsNoSessionButItsWriters()
    {
        await using var ledger = await TestLedger.PostgresAsync();
        await using var vhost = await RabbitMqVhost.CreateAsync();
        await using (var host = await LedgerHost.StartAsync(ledger, o =>
        {
            o.HeartbeatInterval = TimeSpan.FromSeconds(1);
            o.HostTimeout = TimeSpan.FromSeconds(30);
            o.Failures.RetryPollInterval = TimeSpan.FromMilliseconds(500);
        }, services =>
        {
            services.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
            // A webhook nobody listens on: the alerter reads the failure groups every second and its posts fail.
            services.AddJobLogFailureAlerts(o =>
            {
                o.Webhooks.Add(new FailureAlertWebhook { Url = new Uri("http://127.0.0.1:9/") });
                o.Interval = TimeSpan.FromSeconds(1);
                o.Timeout = TimeSpan.FromSeconds(1);
            });
            services.AddMassTransit(x =>
            {
                x.SetKebabCaseEndpointNameFormatter();
                x.AddJobLogScheduler(o => o.PollInterval = TimeSpan.FromMilliseconds(500));
                x.AddConsumer<ChargeCardConsumer>();
                x.AddConsumer<DoomedJobConsumer>();
                x.UsingTestVhost(vhost);
            });
        }))
        {
            await using var look = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(ledger.ConnectionString) { Pooling = false }.ConnectionString);
            await look.OpenAsync();
            var bus = host.Services.GetRequiredService<IBus>();
            await bus.Publish(new ChargeCard(1, 1m), x => x.SetTaskOptions(t => t.Countdown = TimeSpan.FromSeconds(1)));
            await bus.Publish(new DoomedJob("idle sessions"));
            await LedgerHost.EventuallyAsync(async () =>
            {
                await using var done = new NpgsqlCommand(
                    $"SELECT (SELECT count(*) FROM \"JobLogTaskRuns\" WHERE \"State\" = {(int)TaskRunState.Succeeded}) = 1 AND (SELECT count(*) FROM \"JobLogKeptMessages\") = 1", look);
                return (bool)(await done.ExecuteScalarAsync())!;
            }, TimeSpan.FromSeconds(90), "the scheduled message sent and consumed, the failed one kept");

            // A read through the scoped context (the CLI's, an application's LINQ) and one through the dashboard's pool.
            await using (var scope = host.Services.CreateAsyncScope())
            {
                Assert.That(await scope.ServiceProvider.GetRequiredService<JobLogDbContext>().TaskLogs.CountAsync(), Is.EqualTo(2));
            }

            var contexts = host.Services.GetRequiredService<JobLogContextFactory>();
            await using (var dashboard = contexts.Database.ContextFactory(contexts.Database.ForReaders(contexts.ConnectionString, "JobLog dashboard", 4))())
            {
                var queries = new LedgerQueries(dashboard, contexts.Database);
                Assert.That((await queries.FailureGroupsAsync(new FailureFilter(), DateTime.UtcNow, CancellationToken.None)).Groups, Has.Count.EqualTo(1));
            }

            // The alerter goes on reading every second. Past the pools' short idle lifetime (JobLog's: 10 s, pruned every
            // 5 s), the fewest sessions of the process over a few looks.
            await Task.Delay(TimeSpan.FromSeconds(25));
            var (fewest, seen) = await FewestSessionsAsync(look);
            TestContext.Out.WriteLine($"fewest sessions: {fewest}: {seen}");
            Assert.That(fewest, Is.LessThanOrEqualTo(1), "the writer's session only: " + seen);
        }
    }

    /// <summary>
    /// Session 33 (session 32's price for its unpooled polls): the retry sender's idle poll, every
    /// <c>Failures.RetryPollInterval</c> (1 s), opened a new server session each time (a server process and a SCRAM
    /// exchange), once a second per process with a bus, though only another process's dashboard or CLI needs the poll
    /// (a retry asked in this process wakes the sender at once). With the defaults an idle process with a bus opens a few
    /// sessions a minute.
    /// </summary>
    [Test]
    [CancelAfter(180_000)]
    public async Task WhileIdle_WithTheDefaults_AProcessWithABusOpensFewSessions()
    {
        await using var ledger = await TestLedger.PostgresAsync();
        await using var vhost = await RabbitMqVhost.CreateAsync();
        await using var host = await LedgerHost.StartAsync(ledger, services: services =>
        {
            services.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
            services.AddMassTransit(x =>
            {
                x.SetKebabCaseEndpointNameFormatter();
                x.AddConsumer<ChargeCardConsumer>();
                x.UsingTestVhost(vhost);
            });
        });
        await using var look = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(ledger.ConnectionString) { Pooling = false }.ConnectionString);
        await look.OpenAsync();
        await host.Services.GetRequiredService<IBus>().Publish(new ChargeCard(1, 1m));
        await LedgerHost.EventuallyAsync(async () =>
        {
            await using var succeeded = new NpgsqlCommand($"SELECT count(*) FROM \"JobLogTaskRuns\" WHERE \"State\" = {(int)TaskRunState.Succeeded}", look);
            return (long)(await succeeded.ExecuteScalarAsync())! == 1;
        }, TimeSpan.FromSeconds(60), "the message consumed and its run recorded");

        // Sessions established to the ledger's database (the server counts them) over 30 s of idleness.
        var idle = TimeSpan.FromSeconds(30);
        var before = await SessionsEstablishedAsync(look);
        await Task.Delay(idle);
        var opened = await SessionsEstablishedAsync(look) - before;

        TestContext.Out.WriteLine($"sessions opened in {idle.TotalSeconds} s of idleness: {opened}");
        // The heartbeat's (every 15 s) and the retry sender's polls (every 5 s): about 9 in the 34 s between the counts;
        // at one poll a second it was 31.
        Assert.That(opened, Is.LessThanOrEqualTo(12));
    }

    private static async Task<long> SessionsEstablishedAsync(NpgsqlConnection look)
    {
        // A session's statistics reach the server's counters when it ends or within a second of going idle.
        await Task.Delay(TimeSpan.FromSeconds(2));
        await using var command = new NpgsqlCommand("SELECT sessions FROM pg_stat_database WHERE datname = current_database()", look);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static async Task<(int Fewest, string Seen)> FewestSessionsAsync(NpgsqlConnection look)
    {
        var fewest = int.MaxValue;
        var seen = "";
        for (var i = 0; i < 20; i++)
        {
            await using var command = new NpgsqlCommand(
                "SELECT count(*), string_agg(state || ': ' || coalesce(application_name, '') || ': ' || left(query, 60), ' | ') FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()", look);
            await using var reader = await command.ExecuteReaderAsync();
            await reader.ReadAsync();
            var count = (int)reader.GetInt64(0);
            if (count < fewest)
            {
                fewest = count;
                seen = reader.IsDBNull(1) ? "" : reader.GetString(1);
            }

            await Task.Delay(100);
        }

        return (fewest, seen);
    }
}
