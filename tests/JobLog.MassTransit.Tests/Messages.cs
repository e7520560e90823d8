using System.Collections.Concurrent;
using MassTransit;
using Microsoft.Extensions.Logging;

namespace JobLog.MassTransit.Tests;

public sealed record ChargeCard(int CustomerId, decimal Amount);

public sealed record FlakyJob(int Failures);

public sealed record DoomedJob(string Reason);

public sealed record ParentJob(int Id);

public sealed record ChildJob(int ParentId);

public sealed record Report(string Title);

public sealed record SlowJob(int Milliseconds);

public sealed record QuickJob(int Id);

public sealed record SignUp(string User, SignUpDetails Details);

public sealed record SignUpDetails(string Email, Account Account);

public sealed record Account(string Password, string Hint);

public sealed record BigJob(string Payload);

public sealed class ChargeCardConsumer(ILogger<ChargeCardConsumer> logger) : IConsumer<ChargeCard>
{
    public Task Consume(ConsumeContext<ChargeCard> context)
    {
        logger.LogInformation("charging customer {CustomerId}", context.Message.CustomerId);
        return Task.CompletedTask;
    }
}

public sealed class FlakyJobConsumer : IConsumer<FlakyJob>
{
    private static readonly ConcurrentDictionary<Guid, int> s_attempts = new();

    public Task Consume(ConsumeContext<FlakyJob> context)
    {
        var attempt = s_attempts.AddOrUpdate(context.MessageId!.Value, 1, (_, n) => n + 1);
        if (attempt <= context.Message.Failures)
        {
            throw new InvalidOperationException($"flaky failure {attempt}");
        }

        return Task.CompletedTask;
    }
}

public sealed class DoomedJobConsumer : IConsumer<DoomedJob>
{
    public Task Consume(ConsumeContext<DoomedJob> context) => throw new ArgumentException("doomed: " + context.Message.Reason);
}

public sealed class ParentJobConsumer : IConsumer<ParentJob>
{
    public Task Consume(ConsumeContext<ParentJob> context) => context.Publish(new ChildJob(context.Message.Id));
}

public sealed class ChildJobConsumer : IConsumer<ChildJob>
{
    public Task Consume(ConsumeContext<ChildJob> context) => Task.CompletedTask;
}

public sealed class SlowJobConsumer : IConsumer<SlowJob>, IConsumer<QuickJob>
{
    public static int QuickConsumed;

    public Task Consume(ConsumeContext<SlowJob> context) => Task.Delay(context.Message.Milliseconds);

    public Task Consume(ConsumeContext<QuickJob> context)
    {
        Interlocked.Increment(ref QuickConsumed);
        return Task.CompletedTask;
    }
}

public sealed class SignUpConsumer : IConsumer<SignUp>
{
    public Task Consume(ConsumeContext<SignUp> context) => Task.CompletedTask;
}

public sealed class BigJobConsumer : IConsumer<BigJob>
{
    public Task Consume(ConsumeContext<BigJob> context) => Task.CompletedTask;
}

public sealed class SlowJobDefinition : ConsumerDefinition<SlowJobConsumer>
{
    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<SlowJobConsumer> consumerConfigurator, IRegistrationContext context)
    {
        endpointConfigurator.ConcurrentMessageLimit = 1;
        if (endpointConfigurator is IRabbitMqReceiveEndpointConfigurator rabbit)
        {
            rabbit.PrefetchCount = 1;
        }
    }
}
