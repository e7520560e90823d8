using System.Net.Mime;
using JobLog.Failures;
using JobLog.MassTransit.Scheduling;
using JobLog.Storage;
using MassTransit;
using MassTransit.Serialization;
using Microsoft.EntityFrameworkCore;

namespace JobLog.MassTransit.Internal.Failures;

/// <summary>One claimed batch of retries: those ready to send (with their decrypted message), and those that end here.</summary>
internal sealed class RetryBatch
{
    public List<KeptRetry> Ready { get; } = [];

    public List<(FailureActionItemLog Item, string Reason)> Skipped { get; } = [];

    public List<(FailureActionItemLog Item, string Reason)> Failed { get; } = [];

    public static async Task<RetryBatch> LoadAsync(
        JobLogContextFactory contexts, KeptMessageCodec codec, IReadOnlyList<FailureActionItemLog> claimed, CancellationToken ct)
    {
        var batch = new RetryBatch();
        var db = await contexts.OpenUnpooledAsync(ct).ConfigureAwait(false);
        await using (db.ConfigureAwait(false))
        {
            var keptIds = claimed.Where(i => i.KeptMessageId is not null).Select(i => i.KeptMessageId!.Value).ToList();
            var taskIds = claimed.Select(i => i.TaskId).ToList();
            var actionIds = claimed.Select(i => i.ActionId).Distinct().ToList();
            var kept = await db.KeptMessages.AsNoTracking().Where(k => keptIds.Contains(k.Id)).ToDictionaryAsync(k => k.Id, ct).ConfigureAwait(false);
            var tasks = await db.TaskLogs.AsNoTracking().Where(t => taskIds.Contains(t.Id))
                .Select(t => new { t.Id, t.State, t.Resolution }).ToDictionaryAsync(t => t.Id, ct).ConfigureAwait(false);
            var actions = await db.FailureActions.AsNoTracking().Where(a => actionIds.Contains(a.Id)).ToDictionaryAsync(a => a.Id, ct).ConfigureAwait(false);
            foreach (var item in claimed)
            {
                if (item.KeptMessageId is not { } keptId || !kept.TryGetValue(keptId, out var message) || message.Protected is null)
                {
                    batch.Skipped.Add((item, "kept message deleted"));
                }
                else if (!tasks.TryGetValue(item.TaskId, out var task) || task.State != TaskState.Failed)
                {
                    batch.Skipped.Add((item, "no longer failed"));
                }
                else if (task.Resolution is not null)
                {
                    batch.Skipped.Add((item, "resolved in the meantime"));
                }
                else
                {
                    try
                    {
                        batch.Ready.Add(new KeptRetry(item, message, codec.Unprotect(message.Protected), actions[item.ActionId]));
                    }
                    catch (System.Security.Cryptography.CryptographicException ex)
                    {
                        batch.Failed.Add((item, "cannot decrypt the kept message (Data Protection keys): " + ex.Message));
                    }
                }
            }
        }

        return batch;
    }
}

/// <summary>A kept message to send back to its input address, with its MessageId, as a retry by JobLog.</summary>
internal sealed record KeptRetry(FailureActionItemLog Item, KeptMessageLog Message, KeptMessageContent Content, FailureActionLog Action)
{
    /// <summary>Says JobLog retried the message.</summary>
    public const string RetriedHeader = "JobLog-Retried";

    /// <summary>The retry's action (request) id.</summary>
    public const string ActionHeader = "JobLog-Retry-ActionId";

    /// <summary>Who asked for the retry.</summary>
    public const string RequestedByHeader = "JobLog-Retry-RequestedBy";

    public async Task SendAsync(IBus bus, TimeProvider time, CancellationToken cancellationToken)
    {
        var endpoint = await bus.GetSendEndpoint(new Uri(Message.InputAddress)).ConfigureAwait(false);
        await endpoint.Send(new SerializedMessageBody(), new KeptMessagePipe(this, time), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Headers that describe a past delivery or its fault, not the message: MassTransit's fault and host headers, the
    /// redelivery count, the transport's own (RabbitMQ's exchange, routing key, tags; MessageId and the like, which the
    /// envelope restores; the broker's dead-lettering history, <c>x-death</c>, <c>x-first-death-*</c>,
    /// <c>x-last-death-*</c>), and a previous retry's.
    /// </summary>
    public static bool IsDropped(string key) =>
        key.StartsWith("MT-Fault-", StringComparison.OrdinalIgnoreCase)
        || key.StartsWith("MT-Host-", StringComparison.OrdinalIgnoreCase)
        || key.StartsWith("RabbitMQ-", StringComparison.OrdinalIgnoreCase)
        || key.Equals("x-death", StringComparison.OrdinalIgnoreCase)
        || key.StartsWith("x-first-death-", StringComparison.OrdinalIgnoreCase)
        || key.StartsWith("x-last-death-", StringComparison.OrdinalIgnoreCase)
        || key.StartsWith("JobLog-Retr", StringComparison.OrdinalIgnoreCase)
        || key is "MT-Reason" or "MT-Redelivery-Count" or "MessageId" or "CorrelationId" or "Content-Type" or "ContentType" or "MT-Activity-Id";

    private sealed class KeptMessagePipe(KeptRetry retry, TimeProvider time) : IPipe<SendContext>
    {
        public Task Send(SendContext context)
        {
            var message = retry.Message;
            var contentType = new ContentType(message.ContentType ?? "application/vnd.masstransit+json");
            var deserializer = context.Serialization.GetMessageDeserializer(contentType);
            var headers = new DictionarySendHeaders();
            foreach (var (key, value) in retry.Content.Headers)
            {
                headers.Set(key, value);
            }

            var address = new Uri(message.InputAddress);
            var stored = deserializer.Deserialize(new BytesMessageBody(retry.Content.Body), headers, address);
            context.MessageId = stored.MessageId ?? context.MessageId;
            StoredEnvelope.CopyIdentity(stored, context);
            if (stored.ExpirationTime is { } expiration
                && DateTime.SpecifyKind(expiration, DateTimeKind.Utc) - time.GetUtcNow().UtcDateTime is var left && left > TimeSpan.Zero)
            {
                context.TimeToLive = left;
            }

            foreach (var header in stored.Headers.GetAll().Concat(retry.Content.Headers.Select(h => new KeyValuePair<string, object>(h.Key, h.Value))))
            {
                if (!IsDropped(header.Key))
                {
                    context.Headers.Set(header.Key, header.Value);
                }
            }

            context.Headers.Set(RetriedHeader, "true");
            context.Headers.Set(ActionHeader, retry.Action.Id.ToString("D"));
            context.Headers.Set(RequestedByHeader, retry.Action.RequestedBy);
            context.Serializer = stored.GetMessageSerializer();
            // The task is in the ledger already: the retry is a new run of it, not a new task.
            context.GetOrAddPayload(() => ScheduledDispatchPayload.Instance);
            return Task.CompletedTask;
        }

        public void Probe(ProbeContext context) => context.CreateFilterScope("jobLogKeptMessageRetry");
    }
}
