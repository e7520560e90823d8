using JobLog.Recording;
using JobLog.Redaction;
using MassTransit;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// The run and the task seed a consumed message gives, the same for consumers, sagas, handlers, batches, activities
/// and response receipts: times from the message's headers, the broker's redelivery flag, this host.
/// </summary>
internal static class ConsumedRecords
{
    /// <summary>
    /// The task a consumed message belongs to: a redelivery's <c>MT-OriginalMessageId</c>, else its MessageId (the
    /// transport's when the envelope has none); null when neither is a Guid. A header that is not a Guid (a foreign
    /// producer's) is ignored: MassTransit's <c>GetOriginalMessageId</c> throws on it, which kept the consumer from running.
    /// </summary>
    public static Guid? TaskId(ConsumeContext context)
    {
        try
        {
            if (context.GetOriginalMessageId() is { } original)
            {
                return original;
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Not a Guid: not a redelivery of ours.
        }

        if (EnvelopeFields.MessageId(context) is { } id)
        {
            return id;
        }

        try
        {
            return context.ReceiveContext.TransportHeaders.Get<Guid>(MessageHeaders.MessageId);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return null;
        }
    }

    /// <summary>
    /// A run of <paramref name="taskId"/> starting at <paramref name="start"/>; ACTIVE unless it already ended
    /// (<paramref name="ended"/>), with the message's rendering when it is known on the consume path (<paramref name="rendered"/>).
    /// </summary>
    public static RunPayload Run(
        TaskLoggingServices services, ConsumeContext context, Guid runId, Guid taskId, string name, string? queue, string consumerType, DateTime start,
        RunEnd? ended = null, RenderedMessage? rendered = null) =>
        new()
        {
            Id = runId,
            TaskId = taskId,
            Name = name,
            QueueName = queue,
            ConsumerType = consumerType,
            Start = start,
            Redelivered = context.ReceiveContext.Redelivered,
            Host = services.Options.Host,
            HostInstanceId = services.Recorder.InstanceId,
            WaitingTime = context.SentTime is { } sent ? Math.Max(0, (start - Utc(sent)).TotalSeconds) : null,
            State = ended?.State ?? TaskRunState.Active,
            Stop = ended?.Stop,
            ErrorMessage = ended?.ErrorMessage,
            Input = rendered?.Input,
            TaskArgs = rendered?.TaskArgs,
            TaskKwargs = rendered?.TaskKwargs,
        };

    /// <summary>
    /// The task row the writer creates when the producer's row is missing (a foreign or unrecorded producer, a mediator
    /// request client's send); <paramref name="caller"/>: the mediator caller's run and request (<see cref="DeliveryState.Caller"/>).
    /// The envelope's ids and addresses as <see cref="EnvelopeFields"/> reads them (absent when not readable, cut to their columns).
    /// </summary>
    public static TaskPayload Seed(
        ConsumeContext context, Guid taskId, string name, string? queue, DateTime start, DateTime? expires = null, bool isInternal = false,
        (Guid? Run, Guid? Request) caller = default) =>
        new()
        {
            Id = taskId,
            Name = name,
            QueueName = EnvelopeFields.Name(queue),
            DispatchedAt = context.SentTime is { } sent ? Utc(sent) : start,
            EstimatedTimeOfFirstArrival = context.SentTime is { } eta ? Utc(eta) : start,
            CorrelationId = EnvelopeFields.CorrelationId(context),
            ConversationId = EnvelopeFields.ConversationId(context),
            SourceAddress = EnvelopeFields.Address(SourceAddressText.Of(EnvelopeFields.SourceAddress(context))),
            Expires = expires,
            IsInternal = isInternal,
            ParentRunId = caller.Run,
            InputRequestId = caller.Request,
        };

    private static DateTime Utc(DateTime time) => DateTime.SpecifyKind(time, DateTimeKind.Utc);
}

/// <summary>
/// <see cref="Uri.ToString"/> of a consumed message's source address. Each delivery reads its own <see cref="Uri"/> from
/// the envelope, and its text costs a parse and a string per message; consecutive messages mostly come from one address,
/// and an address read from the same original string has the same text, so the last one is kept.
/// </summary>
internal static class SourceAddressText
{
    private static Entry? s_last;

    public static string? Of(Uri? address)
    {
        if (address is null)
        {
            return null;
        }

        var last = Volatile.Read(ref s_last);
        if (last is not null && last.Absolute == address.IsAbsoluteUri && string.Equals(last.Original, address.OriginalString, StringComparison.Ordinal))
        {
            return last.Text;
        }

        var text = address.ToString();
        Volatile.Write(ref s_last, new Entry(address.OriginalString, address.IsAbsoluteUri, text));
        return text;
    }

    private sealed record Entry(string Original, bool Absolute, string Text);
}

/// <summary>How a run that ended before its record was enqueued ended.</summary>
internal readonly record struct RunEnd(TaskRunState State, DateTime Stop, string? ErrorMessage);
