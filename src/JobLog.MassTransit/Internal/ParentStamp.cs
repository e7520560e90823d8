using MassTransit;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// Stamps the ambient run on a message when its send context is created. The transactional outbox creates the context
/// when the consumer (or the request, for the bus outbox) writes the message and delivers it later, outside that run:
/// the stamp travels with the stored headers and links the delivered task to the run that wrote it.
/// </summary>
internal static class ParentStamp
{
    /// <summary>The header with the id of the run the message was written in.</summary>
    public const string RunHeader = "JobLog-ParentRunId";

    /// <summary>The header with the id of the inbound request the message was written in (the bus outbox's case).</summary>
    public const string RequestHeader = "JobLog-InputRequestId";

    public static void Stamp(SendContext context)
    {
        if (JobLogScope.CurrentTaskRunId is { } run && !context.Headers.TryGetHeader(RunHeader, out _))
        {
            context.Headers.Set(RunHeader, run.ToString());
        }

        if (JobLogScope.CurrentInputRequestId is { } request && !context.Headers.TryGetHeader(RequestHeader, out _))
        {
            context.Headers.Set(RequestHeader, request.ToString());
        }
    }

    /// <summary>The id in <paramref name="header"/>, if the message carries it.</summary>
    public static Guid? Read(SendContext context, string header) =>
        context.Headers.TryGetHeader(header, out var value) && Guid.TryParse(value?.ToString(), out var id) ? id : null;
}
