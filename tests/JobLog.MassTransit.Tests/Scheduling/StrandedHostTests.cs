using JobLog.Querying;
using JobLog.Recording;
using JobLog.Scheduling;
using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Scheduling;

/// <summary>
/// Session 33: what the dispatcher's stranded check logs (event 3012: stored messages overdue for a broker none of this
/// process's buses reaches) reaches the host's row through its heartbeat, so the hosts page and <c>api/hosts</c> show it,
/// and leaves it once nothing is stranded. A real bus on the in-memory transport with the JobLog scheduler.
/// </summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class StrandedHostTests(LedgerProvider provider)
{
    private const string Elsewhere = "rabbitmq://127.0.0.1/elsewhere/charge-card";
    private LedgerHost _host = null!;

    [SetUp]
    public async Task SetUp() => _host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider), services: services =>
    {
        services.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
        services.AddMassTransit(x =>
        {
            x.SetKebabCaseEndpointNameFormatter();
            x.AddJobLogScheduler(o => o.PollInterval = TimeSpan.FromMilliseconds(500));
            x.AddConsumer<ChargeCardConsumer>();
            x.UsingInMemory((context, cfg) =>
            {
                cfg.UseTaskLogging(context);
                cfg.ConfigureEndpoints(context);
            });
        });
    });

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    [Test]
    public async Task MessagesOverdueForABrokerNoBusHereReaches_AreOnThisHostsRow_UntilNoneIs()
    {
        var id = NewId.NextGuid();
        var due = DateTime.UtcNow.AddMinutes(-5);
        await ActivatorUtilities.CreateInstance<ScheduledMessageStore>(_host.Services).AddAsync(new ScheduledMessageLog
        {
            Id = id, MessageId = id, MessageType = "urn:message:Shop:ChargeCard", Destination = Elsewhere, ScheduledTime = due,
            ContentType = "application/vnd.masstransit+json", Body = [1, 2, 3], CreatedAt = due.AddMinutes(-1), Host = "test",
        }, CancellationToken.None);
        var stranded = _host.Services.GetRequiredService<StrandedWork>();
        await LedgerHost.EventuallyAsync(() => Task.FromResult(stranded.Text is not null), TimeSpan.FromMinutes(1), "the dispatcher's check found it");

        // The heartbeat writes a changed line at once (db3af89). The test does not beat itself: a background beat that read
        // the line before it changed can finish after the test's own and write the old line over it (session 34's failure,
        // at 6 s: the check's clear, then the test's beat, then a beat slow to open its connection at load 50).
        await LedgerHost.EventuallyAsync(async () => (await RowAsync())?.Stranded is not null, TimeSpan.FromMinutes(1), "the line on this host's row");
        Assert.That((await RowAsync())!.Stranded, Does.StartWith("1 scheduled message overdue by more than 00:00:01 for a broker none of this process's buses reaches")
            .And.Contain($"(the earliest for {Elsewhere}, due {due:yyyy-MM-ddTHH:mm:ss}"));

        await _host.QueryAsync(db => db.ScheduledMessages.Where(m => m.Id == id).ExecuteDeleteAsync());
        await LedgerHost.EventuallyAsync(() => Task.FromResult(stranded.Text is null), TimeSpan.FromMinutes(1), "the next check found none");
        await LedgerHost.EventuallyAsync(async () => (await RowAsync()) is { Stranded: null }, TimeSpan.FromMinutes(1), "the line cleared from this host's row");
    }

    /// <summary>This instance's row as the hosts page reads it, or null before its first heartbeat.</summary>
    private async Task<HostRow?> RowAsync()
    {
        await using var scope = _host.Services.CreateAsyncScope();
        var hosts = await scope.ServiceProvider.GetRequiredService<LedgerQueries>()
            .HostsAsync(new HostFilter(), TimeSpan.FromSeconds(10), TimeSpan.FromMinutes(1), DateTime.UtcNow, CancellationToken.None);
        var instance = _host.Services.GetRequiredService<LedgerRecorder>().InstanceId;
        return hosts.Items.SingleOrDefault(h => h.InstanceId == instance);
    }
}
