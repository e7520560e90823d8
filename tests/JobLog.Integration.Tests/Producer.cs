using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace JobLog.Integration.Tests;

/// <summary>The Worker's demo contracts, by message urn and exchange name (as another service would declare them).</summary>
[MessageUrn("JobLog.Worker.Demo:ChargeCard")]
[EntityName("JobLog.Worker.Demo:ChargeCard")]
public sealed record ChargeCard(int CustomerId, decimal Amount);

[MessageUrn("JobLog.Worker.Demo:BuildReport")]
[EntityName("JobLog.Worker.Demo:BuildReport")]
public sealed record BuildReport(string Title, int Seconds);

/// <summary>
/// The test process as a producer on another machine: JobLog on the shared PostgreSQL ledger, a bus on the vhost that
/// schedules through the Workers' JobLog scheduler (it runs no scheduler and no consumer itself).
/// </summary>
public sealed class Producer : IAsyncDisposable
{
    private Producer(LedgerHost host) => Host = host;

    public LedgerHost Host { get; }

    public IBus Bus => Host.Services.GetRequiredService<IBus>();

    public static async Task<Producer> StartAsync(TestLedger ledger, RabbitMqVhost vhost)
    {
        var host = await LedgerHost.StartAsync(ledger, services: services =>
        {
            services.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
            services.AddMassTransit(x =>
            {
                x.AddMessageScheduler(new Uri("queue:joblog-scheduler"));
                x.UsingRabbitMq((context, cfg) =>
                {
                    cfg.Host(RabbitMqVhost.Host, vhost.Name, h =>
                    {
                        h.Username("guest");
                        h.Password("guest");
                    });
                    cfg.UseTaskLogging(context);
                    cfg.ConfigureEndpoints(context);
                });
            });
        });
        return new Producer(host);
    }

    /// <summary>Schedules one message per id to <paramref name="destination"/>, at most 100 sends in flight.</summary>
    public async Task ScheduleAsync<T>(Uri destination, IReadOnlyList<(Guid Id, DateTime At, T Message)> messages)
        where T : class
    {
        await using var scope = Host.Services.CreateAsyncScope();
        var scheduler = scope.ServiceProvider.GetRequiredService<IMessageScheduler>();
        foreach (var chunk in messages.Chunk(100))
        {
            await Task.WhenAll(chunk.Select(m =>
                scheduler.ScheduleSend(destination, m.At, m.Message, Pipe.Execute<SendContext<T>>(x => x.MessageId = m.Id))));
        }
    }

    public Task<int> CountAsync(Func<JobLogDbContext, Task<int>> query) => Host.QueryAsync(query);

    public Task<List<TaskLog>> TasksAsync(IReadOnlyCollection<Guid> ids) =>
        Host.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).Where(t => ids.Contains(t.Id)).ToListAsync());

    public ValueTask DisposeAsync() => Host.DisposeAsync();
}
