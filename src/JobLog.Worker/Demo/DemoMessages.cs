using MassTransit;
using Microsoft.Extensions.Logging;

namespace JobLog.Worker.Demo;

/// <summary>Succeeds at once.</summary>
public sealed record ChargeCard(int CustomerId, decimal Amount);

/// <summary>Fails twice, then succeeds (three runs: RETRIED, RETRIED, SUCCEEDED).</summary>
public sealed record SyncInventory(string Sku);

/// <summary>Always fails (RETRIED, RETRIED, FAILED; the message ends in <c>_error</c>).</summary>
public sealed record SendInvoice(int InvoiceId, string Email);

/// <summary>Takes a while (ACTIVE for a few seconds).</summary>
public sealed record BuildReport(string Title, int Seconds);

internal sealed class ChargeCardConsumer(ILogger<ChargeCardConsumer> logger) : IConsumer<ChargeCard>
{
    public Task Consume(ConsumeContext<ChargeCard> context)
    {
        logger.LogInformation("Charged customer {CustomerId} {Amount:0.00}", context.Message.CustomerId, context.Message.Amount);
        return Task.CompletedTask;
    }
}

internal sealed class SyncInventoryConsumer(ILogger<SyncInventoryConsumer> logger) : IConsumer<SyncInventory>
{
    public Task Consume(ConsumeContext<SyncInventory> context)
    {
        var attempt = context.GetRetryAttempt() + context.GetRedeliveryCount();
        logger.LogInformation("Syncing {Sku}, attempt {Attempt}", context.Message.Sku, attempt);
        if (attempt < 2)
        {
            throw new TimeoutException($"Warehouse API timed out for {context.Message.Sku}");
        }

        return Task.CompletedTask;
    }
}

internal sealed class SendInvoiceConsumer(ILogger<SendInvoiceConsumer> logger) : IConsumer<SendInvoice>
{
    public Task Consume(ConsumeContext<SendInvoice> context)
    {
        logger.LogWarning("Mail server refused invoice {InvoiceId}", context.Message.InvoiceId);
        throw new InvalidOperationException($"SMTP 550: mailbox unavailable for invoice {context.Message.InvoiceId}");
    }
}

internal sealed class BuildReportConsumer(ILogger<BuildReportConsumer> logger, TimeProvider time) : IConsumer<BuildReport>
{
    public async Task Consume(ConsumeContext<BuildReport> context)
    {
        logger.LogInformation("Building report {Title}", context.Message.Title);
        await Task.Delay(TimeSpan.FromSeconds(Math.Clamp(context.Message.Seconds, 0, 60)), time, context.CancellationToken);
        logger.LogInformation("Report {Title} done", context.Message.Title);
    }
}
