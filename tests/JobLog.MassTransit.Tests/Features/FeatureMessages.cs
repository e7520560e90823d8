using System.Collections.Concurrent;
using MassTransit;

namespace JobLog.MassTransit.Tests.Features;

public sealed record Envelope<T>(T Body);

public static class Outer<TKey>
{
    public sealed record Inner(string Value);
}

public static class Deep<TKey>
{
    public static class Middle
    {
        public sealed record Leaf<TValue>(TKey Key, TValue Value);
    }
}

public static class Nest
{
    public sealed record Nested(string Value);
}

public sealed record DeferMe(int Times);

public sealed record IgnoredFailure(string Why);

public sealed record Breaker(int N);

public sealed record Shipped(int N);

public sealed class ShippedBillingConsumer : IConsumer<Shipped>
{
    public Task Consume(ConsumeContext<Shipped> context) => Task.CompletedTask;
}

public sealed class ShippedMailConsumer : IConsumer<Shipped>
{
    public Task Consume(ConsumeContext<Shipped> context) => Task.CompletedTask;
}

public sealed record Partitioned(int Key, int N);

public sealed record OutboxParent(int Failures);

public sealed record OutboxChild(int N);

public sealed class EnvelopeConsumer : IConsumer<Envelope<ChargeCard>>
{
    public Task Consume(ConsumeContext<Envelope<ChargeCard>> context) => Task.CompletedTask;
}

public sealed class OuterInnerConsumer : IConsumer<Outer<int>.Inner>
{
    public Task Consume(ConsumeContext<Outer<int>.Inner> context) => Task.CompletedTask;
}

/// <summary>A consumer nested in a generic class, one closed type per key type: <c>Lanes&lt;int&gt;.Consumer</c>, <c>Lanes&lt;string&gt;.Consumer</c>.</summary>
public static class Lanes<TKey>
{
    public sealed class Consumer : IConsumer<Outer<TKey>.Inner>
    {
        public Task Consume(ConsumeContext<Outer<TKey>.Inner> context) => Task.CompletedTask;
    }
}

public sealed class NestedConsumer : IConsumer<Nest.Nested>
{
    public Task Consume(ConsumeContext<Nest.Nested> context) => Task.CompletedTask;
}

public sealed class DeferMeConsumer : IConsumer<DeferMe>
{
    private static readonly ConcurrentDictionary<Guid, int> s_attempts = new();

    public async Task Consume(ConsumeContext<DeferMe> context)
    {
        var key = context.GetOriginalMessageId() ?? context.MessageId!.Value;
        var n = s_attempts.AddOrUpdate(key, 1, (_, v) => v + 1);
        if (n <= context.Message.Times)
        {
            await context.Defer(TimeSpan.FromMilliseconds(300));
        }
    }
}

public sealed class IgnoredFailureConsumer : IConsumer<IgnoredFailure>
{
    public Task Consume(ConsumeContext<IgnoredFailure> context) => throw new NotSupportedException(context.Message.Why);
}

public sealed class BreakerConsumer : IConsumer<Breaker>
{
    public Task Consume(ConsumeContext<Breaker> context) => throw new InvalidOperationException("breaker " + context.Message.N);
}

public sealed class PartitionedConsumer : IConsumer<Partitioned>
{
    public static readonly ConcurrentBag<int> Seen = [];

    public async Task Consume(ConsumeContext<Partitioned> context)
    {
        await Task.Delay(10);
        Seen.Add(context.Message.N);
    }
}

public sealed class OutboxParentConsumer : IConsumer<OutboxParent>
{
    private static readonly ConcurrentDictionary<Guid, int> s_attempts = new();

    public async Task Consume(ConsumeContext<OutboxParent> context)
    {
        var n = s_attempts.AddOrUpdate(context.MessageId!.Value, 1, (_, v) => v + 1);
        await context.Publish(new OutboxChild(n));
        if (n <= context.Message.Failures)
        {
            throw new InvalidOperationException("after publish " + n);
        }
    }
}

public sealed class OutboxChildConsumer : IConsumer<OutboxChild>
{
    public Task Consume(ConsumeContext<OutboxChild> context) => Task.CompletedTask;
}

public sealed record Partnered;

/// <summary>Works a while, then succeeds.</summary>
public sealed class SlowPartnerConsumer : IConsumer<Partnered>
{
    public Task Consume(ConsumeContext<Partnered> context) => Task.Delay(400);
}

/// <summary>Defers the first delivery of each message at once, consumes the next.</summary>
public sealed class DeferringPartnerConsumer : IConsumer<Partnered>
{
    private static readonly ConcurrentDictionary<Guid, int> s_attempts = new();

    public async Task Consume(ConsumeContext<Partnered> context)
    {
        if (s_attempts.AddOrUpdate(context.GetOriginalMessageId() ?? context.MessageId!.Value, 1, (_, v) => v + 1) == 1)
        {
            await context.Defer(TimeSpan.FromMilliseconds(200));
        }
    }
}
