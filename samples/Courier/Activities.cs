using MassTransit;

namespace JobLog.Samples.Courier;

/// <summary>Reserves stock for an order; compensation releases it.</summary>
public sealed class ReserveStockActivity(ILogger<ReserveStockActivity> logger) : IActivity<ReserveStockArguments, ReserveStockLog>
{
    public Task<ExecutionResult> Execute(ExecuteContext<ReserveStockArguments> context)
    {
        var reservation = NewId.NextGuid();
        logger.LogInformation("Reserved {Quantity} x {Sku} for order {OrderId} ({Reservation})",
            context.Arguments.Quantity, context.Arguments.Sku, context.Arguments.OrderId, reservation);
        return Task.FromResult(context.Completed(new ReserveStockLog(reservation)));
    }

    public Task<CompensationResult> Compensate(CompensateContext<ReserveStockLog> context)
    {
        logger.LogInformation("Released reservation {Reservation}", context.Log.ReservationId);
        return Task.FromResult(context.Compensated());
    }
}

public sealed record ReserveStockArguments(int OrderId, string Sku, int Quantity);

public sealed record ReserveStockLog(Guid ReservationId);

/// <summary>Charges the customer's card; the payment provider declines amounts over 1,000.</summary>
public sealed class ChargeCardActivity(ILogger<ChargeCardActivity> logger) : IActivity<ChargeCardArguments, ChargeCardLog>
{
    public Task<ExecutionResult> Execute(ExecuteContext<ChargeCardArguments> context)
    {
        logger.LogInformation("Charging {Amount} for order {OrderId}", context.Arguments.Amount, context.Arguments.OrderId);
        if (context.Arguments.Amount > 1000m)
        {
            throw new InvalidOperationException($"The card was declined for order {context.Arguments.OrderId}.");
        }

        return Task.FromResult(context.Completed(new ChargeCardLog($"ch_{context.Arguments.OrderId}")));
    }

    public Task<CompensationResult> Compensate(CompensateContext<ChargeCardLog> context)
    {
        logger.LogInformation("Refunded {ChargeId}", context.Log.ChargeId);
        return Task.FromResult(context.Compensated());
    }
}

public sealed record ChargeCardArguments(int OrderId, decimal Amount);

public sealed record ChargeCardLog(string ChargeId);

/// <summary>Books the shipment (no compensation: it is the last step).</summary>
public sealed class ShipOrderActivity(ILogger<ShipOrderActivity> logger) : IExecuteActivity<ShipOrderArguments>
{
    public Task<ExecutionResult> Execute(ExecuteContext<ShipOrderArguments> context)
    {
        logger.LogInformation("Shipping order {OrderId}", context.Arguments.OrderId);
        return Task.FromResult(context.Completed());
    }
}

public sealed record ShipOrderArguments(int OrderId);
