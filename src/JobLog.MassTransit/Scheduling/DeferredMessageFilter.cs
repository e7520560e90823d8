using JobLog.Recording;
using JobLog.Scheduling;
using MassTransit;
using Microsoft.Extensions.Logging;

namespace JobLog.MassTransit.Scheduling;

/// <summary>
/// On the scheduler queue's dead-letter pipe (messages no consumer there handles): a message JobLog deferred
/// (headers <see cref="SchedulerHeaders.ScheduledTime"/> and <see cref="SchedulerHeaders.Destination"/>) is stored
/// for the dispatcher with its body as received; anything else goes on to <c>_skipped</c>. A failure to store faults
/// the receive, and the broker delivers the message again.
/// </summary>
internal sealed class DeferredMessageFilter(
    ScheduledMessageStore store,
    ScheduledMessageDispatcher dispatcher,
    LedgerRecorder recorder,
    string host,
    TimeProvider time,
    ILogger logger) : IFilter<ReceiveContext>
{
    public async Task Send(ReceiveContext context, IPipe<ReceiveContext> next)
    {
        var headers = context.TransportHeaders;
        var eta = headers.Get<string>(SchedulerHeaders.ScheduledTime);
        var destination = headers.Get<string>(SchedulerHeaders.Destination);
        if (!SchedulerTime.TryParse(eta, out var scheduledTime) || string.IsNullOrEmpty(destination))
        {
            await next.Send(context).ConfigureAwait(false);
            return;
        }

        var messageId = headers.Get<Guid>(MessageHeaders.MessageId);
        var now = time.GetUtcNow().UtcDateTime;
        var row = new ScheduledMessageLog
        {
            // A redelivery is deferred once per attempt under the same MessageId: each deferral is a row of its own.
            Id = headers.Get<Guid>(SchedulerHeaders.Token) ?? messageId ?? NewId.NextGuid(),
            MessageId = messageId,
            Destination = destination,
            ScheduledTime = scheduledTime,
            ContentType = context.ContentType.ToString(),
            Body = context.Body.GetBytes(),
            CreatedAt = now,
            Host = host,
        };
        await JobLogSchedulerConsumer.StoreAsync(store, dispatcher, recorder, row, now, logger, context.CancellationToken).ConfigureAwait(false);
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("jobLogDeferredMessage");
}

/// <summary>Scheduled times are UTC (an unspecified kind is taken as UTC, as MassTransit's schedulers do).</summary>
internal static class SchedulerTime
{
    public static DateTime Normalize(DateTime time) =>
        time.Kind == DateTimeKind.Local ? time.ToUniversalTime() : DateTime.SpecifyKind(time, DateTimeKind.Utc);

    public static string Format(DateTime time) => Normalize(time).ToString("O", System.Globalization.CultureInfo.InvariantCulture);

    public static bool TryParse(string? text, out DateTime time)
    {
        if (DateTime.TryParse(text, System.Globalization.CultureInfo.InvariantCulture,
                System.Globalization.DateTimeStyles.RoundtripKind, out var parsed))
        {
            time = Normalize(parsed);
            return true;
        }

        time = default;
        return false;
    }
}
