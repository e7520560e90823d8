using System.Collections.Concurrent;
using MassTransit;

namespace JobLog.MassTransit.Tests.Scheduling;

public sealed record RedeliveredJob(int Failures);

/// <summary>Fails its first <see cref="RedeliveredJob.Failures"/> deliveries; counts by the original MessageId (redeliveries replace it).</summary>
public sealed class RedeliveredJobConsumer : IConsumer<RedeliveredJob>
{
    private static readonly ConcurrentDictionary<Guid, int> s_attempts = new();

    public Task Consume(ConsumeContext<RedeliveredJob> context)
    {
        var attempt = s_attempts.AddOrUpdate(context.GetOriginalMessageId()!.Value, 1, (_, n) => n + 1);
        if (attempt <= context.Message.Failures)
        {
            throw new InvalidOperationException($"failure {attempt}");
        }

        return Task.CompletedTask;
    }
}

public sealed record TenantJob(int Id);

/// <summary>Remembers the X-Tenant header each message arrived with, and its MessageId.</summary>
public sealed class TenantJobConsumer : IConsumer<TenantJob>
{
    public static readonly ConcurrentDictionary<Guid, string?> Tenants = new();

    public Task Consume(ConsumeContext<TenantJob> context)
    {
        Tenants[context.MessageId!.Value] = context.Headers.Get<string>("X-Tenant");
        return Task.CompletedTask;
    }
}

public sealed record PlanJob(int Id);

/// <summary>Schedules a <see cref="TenantJob"/> one second later from inside the consumer (the endpoint's scheduler).</summary>
public sealed class PlanJobConsumer : IConsumer<PlanJob>
{
    public Task Consume(ConsumeContext<PlanJob> context) =>
        context.ScheduleSend(new Uri("queue:tenant-job"), DateTime.UtcNow.AddSeconds(1), new TenantJob(context.Message.Id));
}
