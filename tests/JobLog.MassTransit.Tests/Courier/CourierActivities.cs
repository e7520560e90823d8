using MassTransit;
using Microsoft.Extensions.Logging;

namespace JobLog.MassTransit.Tests.Courier;

public sealed record ReserveArguments(int OrderId, int Quantity);

public sealed record ReserveLog(Guid ReservationId);

public sealed class ReserveActivity(ILogger<ReserveActivity> logger) : IActivity<ReserveArguments, ReserveLog>
{
    public Task<ExecutionResult> Execute(ExecuteContext<ReserveArguments> context)
    {
        logger.LogInformation("reserving {Quantity} for order {OrderId}", context.Arguments.Quantity, context.Arguments.OrderId);
        return Task.FromResult(context.Completed(new ReserveLog(NewId.NextGuid())));
    }

    public Task<CompensationResult> Compensate(CompensateContext<ReserveLog> context)
    {
        logger.LogInformation("releasing reservation {ReservationId}", context.Log.ReservationId);
        return Task.FromResult(context.Compensated());
    }
}

public sealed record ChargeArguments(int OrderId, decimal Amount);

public sealed record ChargeLog(string ChargeId);

/// <summary>Declines amounts over 100.</summary>
public sealed class ChargeActivity : IActivity<ChargeArguments, ChargeLog>
{
    public Task<ExecutionResult> Execute(ExecuteContext<ChargeArguments> context)
    {
        if (context.Arguments.Amount > 100m)
        {
            throw new InvalidOperationException($"card declined for order {context.Arguments.OrderId}");
        }

        return Task.FromResult(context.Completed(new ChargeLog("ch_" + context.Arguments.OrderId)));
    }

    public Task<CompensationResult> Compensate(CompensateContext<ChargeLog> context) => Task.FromResult(context.Compensated());
}

public sealed record ShipArguments(int OrderId);

public sealed class ShipActivity : IExecuteActivity<ShipArguments>
{
    public Task<ExecutionResult> Execute(ExecuteContext<ShipArguments> context) => Task.FromResult(context.Completed());
}

public static class CourierAddresses
{
    public static Uri Execute<TActivity, TArguments>()
        where TActivity : class, IExecuteActivity<TArguments>
        where TArguments : class =>
        new($"queue:{KebabCaseEndpointNameFormatter.Instance.ExecuteActivity<TActivity, TArguments>()}");
}
