using JobLog.Internal;
using MassTransit;
using MassTransit.Middleware;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// Stamps the ambient run on a message when its send context is created. The transactional outbox creates the context
/// when the consumer (or the request, for the bus outbox) writes the message and delivers it later, outside that run:
/// the stamp travels with the stored headers and links the delivered task to the run that wrote it. Only the signed
/// stamp (<see cref="ParentStampKey"/>, set on an outbox write) is read back; the clear headers are for people reading
/// the broker.
/// </summary>
internal static class ParentStamp
{
    /// <summary>The header with the id of the run the message was written in.</summary>
    public const string RunHeader = "JobLog-ParentRunId";

    /// <summary>The header with the id of the inbound request the message was written in (the bus outbox's case).</summary>
    public const string RequestHeader = "JobLog-InputRequestId";

    public static void Stamp(SendContext context, TaskLoggingServices services)
    {
        if ((JobLogScope.CurrentTaskRunId is not null || JobLogScope.CurrentInputRequestId is not null)
            && context.MessageId is { } messageId
            && context.TryGetPayload<IServiceProvider>(out var provider) && provider is OutboxSendContext)
        {
            try
            {
                context.Headers.Set(ParentStampKey.Header, services.StampKey.Sign(JobLogScope.CurrentTaskRunId, JobLogScope.CurrentInputRequestId, messageId));
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // Recording never breaks the business path: Data Protection failing to seal the key (its key ring
                // unreadable or unwritable) leaves the message unsigned, its delivered task without the stamped parent.
                services.StampFailed(ex);
            }
        }

        if (JobLogScope.CurrentTaskRunId is { } run && !context.Headers.TryGetHeader(RunHeader, out _))
        {
            context.Headers.Set(RunHeader, run.ToString());
        }

        if (JobLogScope.CurrentInputRequestId is { } request && !context.Headers.TryGetHeader(RequestHeader, out _))
        {
            context.Headers.Set(RequestHeader, request.ToString());
        }
    }

    /// <summary>The run and request of the signed stamp JobLog set on this very message, if it carries one.</summary>
    public static (Guid? Run, Guid? Request) Read(SendContext context, ParentStampKey key) =>
        context.MessageId is { } messageId && context.Headers.TryGetHeader(ParentStampKey.Header, out var value)
            ? key.Check(value as string, messageId)
            : (null, null);
}
