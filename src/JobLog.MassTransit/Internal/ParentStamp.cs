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

    public static void Stamp(SendContext context)
    {
        if (JobLogScope.CurrentTaskRunId is { } run && !context.Headers.TryGetHeader(RunHeader, out _))
        {
            context.Headers.Set(RunHeader, run.ToString());
        }
    }
}
