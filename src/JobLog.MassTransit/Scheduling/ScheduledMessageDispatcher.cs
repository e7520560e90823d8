using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Mime;
using JobLog.Internal;
using JobLog.MassTransit.Internal;
using JobLog.Scheduling;
using MassTransit;
using MassTransit.Serialization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace JobLog.MassTransit.Scheduling;

/// <summary>
/// Sends stored messages when they fall due: claim (a lease) → send (the broker confirms) → mark sent. It sleeps until
/// the next due message, wakes early when this process stores an earlier one, and never sleeps longer than
/// <see cref="JobLogSchedulerOptions.PollInterval"/>. Runs while the bus runs (started and stopped by
/// <see cref="SchedulerBusObserver"/>); a stop lets the sends in flight finish and gives the rest of the claim back.
/// </summary>
/// <remarks>
/// An application with several buses (<c>AddMassTransit&lt;TOtherBus&gt;</c>) starts it from each of them: every bus
/// observer in the container is connected to every bus. Each stored message is sent through the bus whose broker its
/// destination names (the longest host address that prefixes it): sent through another bus, a message for another
/// virtual host or broker was confirmed by the wrong broker and never delivered. It runs until the last bus stops. It
/// claims only the messages whose destination one of its buses reaches (or a relative one): another process on the same
/// ledger with other buses sends the rest.
/// </remarks>
internal sealed class ScheduledMessageDispatcher(
    ScheduledMessageStore store,
    IOptions<JobLogSchedulerOptions> options,
    TimeProvider time,
    JobLog.Recording.StrandedWork stranded,
    ILogger<ScheduledMessageDispatcher> logger,
    JobLog.Storage.LedgerRefusals? refusals = null) : IRunsWithBus
{
    private readonly JobLogSchedulerOptions _options = options.Value;
    private readonly Lock _lock = new();
    private TaskCompletionSource _wake = NewSignal();
    private DateTime _sleepingUntil = DateTime.MaxValue;
    private CancellationTokenSource? _stopping;
    private Task? _loop;
    private readonly BusDirectory _buses = new();
    private DateTime _nextPurge = DateTime.MinValue;
    private DateTime _nextStrandedCheck = DateTime.MinValue;

    /// <summary>Until when the dispatcher sleeps; <see cref="DateTime.MaxValue"/> while it works (tests wait for it).</summary>
    internal DateTime SleepingUntil
    {
        get
        {
            lock (_lock)
            {
                return _sleepingUntil;
            }
        }
    }

    /// <summary>Who sent a message (<see cref="ScheduledMessageLog.SentBy"/>): machine and process.</summary>
    public string Name { get; } = $"{Environment.MachineName}/{Environment.ProcessId}";

    /// <summary>A message due at <paramref name="dueAt"/> was stored: wake up if that is earlier than planned.</summary>
    public void Notify(DateTime dueAt)
    {
        lock (_lock)
        {
            if (dueAt < _sleepingUntil)
            {
                _wake.TrySetResult();
            }
        }
    }

    /// <summary>
    /// Starts dispatching once <paramref name="busReady"/> completes, through <paramref name="bus"/> among the buses
    /// already started. Idempotent.
    /// </summary>
    public void Start(IBus bus, Task busReady)
    {
        lock (_lock)
        {
            _buses.Add(bus);
            // Over a ledger opened read-only every claim would fail ("attempt to write a readonly database"), logged at each poll.
            if (_loop is not null || store.ReadOnly)
            {
                return;
            }

            _stopping = new CancellationTokenSource();
            var stopping = _stopping.Token;
            _loop = Task.Run(() => RunAsync(busReady, stopping), CancellationToken.None);
        }
    }

    /// <summary>
    /// <paramref name="bus"/> stops: nothing more is sent through it; the dispatcher stops with the last bus
    /// (<see cref="StopAsync()"/>).
    /// </summary>
    public Task StopAsync(IBus bus)
    {
        lock (_lock)
        {
            if (_buses.Remove(bus) > 0)
            {
                return Task.CompletedTask;
            }
        }

        return StopAsync();
    }

    /// <summary>Stops: no new claim or send; sends in flight finish and are marked; unsent claims are given back.</summary>
    public async Task StopAsync()
    {
        Task? loop;
        CancellationTokenSource? stopping;
        lock (_lock)
        {
            loop = _loop;
            stopping = _stopping;
            _loop = null;
            _stopping = null;
            _buses.Clear();
        }

        if (stopping is null || loop is null)
        {
            return;
        }

        await stopping.CancelAsync().ConfigureAwait(false);
        await loop.ConfigureAwait(false);
        stopping.Dispose();
    }

    private async Task RunAsync(Task busReady, CancellationToken stopping)
    {
        try
        {
            await busReady.WaitAsync(stopping).ConfigureAwait(false);
            await store.EnsureReadyAsync(stopping).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            return;
        }
        catch (Exception ex)
        {
            Log.DispatcherFailed(logger, ex, TimeSpan.Zero);
            return;
        }

        Log.DispatcherStarted(logger, Name, _options.QueueName);
        var failures = 0;
        while (!stopping.IsCancellationRequested)
        {
            TaskCompletionSource wake;
            lock (_lock)
            {
                // From here on every Notify wakes the coming sleep: a message stored while this round looks is not missed.
                _wake = NewSignal();
                _sleepingUntil = DateTime.MaxValue;
                wake = _wake;
            }

            TimeSpan sleep;
            try
            {
                if (refusals?.MayWrite() == false)
                {
                    sleep = _options.PollInterval;
                }
                else
                {
                    var next = await DispatchDueAsync(stopping).ConfigureAwait(false);
                    refusals?.Wrote();
                    failures = 0;
                    var now = UtcNow;
                    sleep = next is { } due ? Clamp(due - now) : _options.PollInterval;
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (refusals?.Refused(ex) == true)
            {
                // Said once (LedgerRefusals); the polls pause while the ledger refuses writes.
                sleep = _options.PollInterval;
            }
            catch (Exception ex)
            {
                failures++;
                sleep = Backoff.Delay(failures, TimeSpan.FromSeconds(1), Max(TimeSpan.FromSeconds(1), _options.PollInterval));
                Log.DispatcherFailed(logger, ex, sleep);
            }

            if (sleep > TimeSpan.Zero)
            {
                using var timer = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                var delay = Task.Delay(sleep, time, timer.Token);

                // Only now may a Notify for a later message be ignored: until here every Notify wakes the sleep.
                lock (_lock)
                {
                    _sleepingUntil = UtcNow + sleep;
                }

                await Task.WhenAny(wake.Task, delay).ConfigureAwait(false);
                await timer.CancelAsync().ConfigureAwait(false);
            }
        }

        Log.DispatcherStopped(logger, Name);
    }

    /// <summary>
    /// One round: claims and sends every due message, batch by batch, then purges old rows when it is time.
    /// </summary>
    /// <returns>When the next message falls due, if any is stored.</returns>
    internal async Task<DateTime?> DispatchDueAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            var now = UtcNow;
            var claimToken = NewId.NextGuid();

            // The database calls of a batch are not cancelled by a stop: a claim must be either used or given back.
            var claimed = await store.ClaimDueAsync(claimToken, now, _options.ClaimLease, _options.BatchSize, Brokers, CancellationToken.None)
                .ConfigureAwait(false);
            if (claimed.Count == 0)
            {
                break;
            }

            await SendBatchAsync(claimToken, claimed, now + _options.ClaimLease, stopping).ConfigureAwait(false);
            if (claimed.Count < _options.BatchSize)
            {
                break;
            }
        }

        await PurgeWhenDueAsync(stopping).ConfigureAwait(false);
        await WarnStrandedWhenDueAsync(stopping).ConfigureAwait(false);
        return await store.NextDueAsync(Brokers, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>
    /// Now and then (every ten poll intervals), a warning when messages for a broker none of this process's buses reaches
    /// are overdue (by more than two poll intervals): left to a process that runs that bus, they would otherwise wait in
    /// silence when none does.
    /// </summary>
    private async Task WarnStrandedWhenDueAsync(CancellationToken stopping)
    {
        if (UtcNow < _nextStrandedCheck || stopping.IsCancellationRequested)
        {
            return;
        }

        _nextStrandedCheck = UtcNow + 10 * _options.PollInterval;
        var overdue = 2 * _options.PollInterval;
        var (count, destination, scheduledTime) = await store.StrandedAsync(Brokers, UtcNow - overdue, stopping).ConfigureAwait(false);
        string? line = null;
        if (count > 0)
        {
            Log.Stranded(logger, count, overdue, destination, scheduledTime);
            line = string.Create(CultureInfo.InvariantCulture,
                $"{count} scheduled {(count == 1 ? "message" : "messages")} overdue by more than {overdue} for a broker none of this process's buses reaches (the earliest for {destination}, due {scheduledTime:O})");
        }

        // The hosts page's line (this host's heartbeat): set or cleared at each check.
        stranded.Set(JobLog.Recording.StrandedKind.ScheduledMessages, line);
    }

    /// <summary>
    /// The brokers this process's buses reach: only their messages are claimed (and those with a relative destination).
    /// Another process on the ledger may run other buses; a message for a broker none of ours reaches is theirs (sent
    /// through one of ours it was confirmed by the wrong broker and lost).
    /// </summary>
    private IReadOnlyList<string> Brokers
    {
        get
        {
            lock (_lock)
            {
                return _buses.Hosts;
            }
        }
    }

    private async Task SendBatchAsync(Guid claimToken, IReadOnlyList<ClaimedMessage> claimed, DateTime leaseEnd, CancellationToken stopping)
    {
        var sent = new ConcurrentBag<Guid>();
        var unsent = new ConcurrentBag<Guid>();
        var halfLease = _options.ClaimLease / 2;
        await Parallel.ForEachAsync(
            claimed,
            new ParallelOptions { MaxDegreeOfParallelism = _options.MaxConcurrentSends },
            async (message, _) =>
            {
                // Never start a send that could outlive the claim: another dispatcher would take the message and send it again.
                // No bus left: the last one stopped before the dispatcher's loop did (a graceful stop); given back, not failed.
                var bus = _buses.For(message.Destination, null);
                if (stopping.IsCancellationRequested || bus is null || UtcNow > leaseEnd - halfLease)
                {
                    unsent.Add(message.Id);
                    return;
                }

                try
                {
                    using var timeout = new CancellationTokenSource(halfLease, time);
                    await SendAsync(bus, message, timeout.Token).ConfigureAwait(false);
                    sent.Add(message.Id);
                }
                catch (Exception) when (stopping.IsCancellationRequested || _buses.Count == 0)
                {
                    // The bus stopped under the send (a graceful stop): given back, due again at once for the next dispatcher.
                    unsent.Add(message.Id);
                }
                catch (Exception ex)
                {
                    await RetryLaterAsync(claimToken, message, ex).ConfigureAwait(false);
                }
            }).ConfigureAwait(false);

        await MarkSentAsync(claimToken, [.. sent], leaseEnd).ConfigureAwait(false);
        if (!unsent.IsEmpty)
        {
            try
            {
                await store.ReleaseAsync(claimToken, [.. unsent], CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                // Not lost: the claim runs out and any dispatcher takes them then.
                Log.ReleaseFailed(logger, ex, unsent.Count);
            }
        }
    }

    private async Task SendAsync(IBus bus, ClaimedMessage message, CancellationToken cancellationToken)
    {
        var endpoint = await bus.GetSendEndpoint(new Uri(message.Destination)).ConfigureAwait(false);
        await endpoint.Send(new SerializedMessageBody(), new StoredMessagePipe(message, time), cancellationToken).ConfigureAwait(false);
        Log.Sent(logger, message.Id, message.MessageId, message.Destination, message.ScheduledTime);
    }

    private async Task RetryLaterAsync(Guid claimToken, ClaimedMessage message, Exception exception)
    {
        var delay = Backoff.Delay(message.Attempts + 1, TimeSpan.FromSeconds(1), Max(TimeSpan.FromSeconds(1), _options.MaxRetryDelay));
        Log.SendFailed(logger, exception, message.Id, message.Destination, message.Attempts + 1, delay);
        try
        {
            var error = exception.ToString();
            await store.RetryLaterAsync(claimToken, message.Id, UtcNow + delay, error.Length > 4000 ? error[..4000] : error, CancellationToken.None)
                .ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Log.ReleaseFailed(logger, ex, 1);
        }
    }

    /// <summary>Marks the sent messages, retrying while the claim holds: a message not marked in time may be sent again.</summary>
    private async Task MarkSentAsync(Guid claimToken, IReadOnlyCollection<Guid> sent, DateTime leaseEnd)
    {
        if (sent.Count == 0)
        {
            return;
        }

        // Retried while the claim holds: the wait that would end past it is not begun.
        using var claim = new CancellationTokenSource();
        Exception? failure = null;
        var retry = Backoff.Retry(
            time, TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(5), static (_, _) => true,
            (ex, _, delay) =>
            {
                failure = ex;
                if (UtcNow + delay >= leaseEnd)
                {
                    claim.Cancel();
                }
            });
        try
        {
            var marked = await retry.ExecuteAsync(
                _ => new ValueTask<int>(store.MarkSentAsync(claimToken, sent, UtcNow, Name, CancellationToken.None)),
                claim.Token).ConfigureAwait(false);
            if (marked < sent.Count)
            {
                Log.ClaimLost(logger, sent.Count - marked);
            }
        }
        catch (Exception ex)
        {
            Log.MarkFailed(logger, failure ?? ex, sent.Count);
        }
    }

    private async Task PurgeWhenDueAsync(CancellationToken stopping)
    {
        if (_options.KeepSentFor is not { } keep || UtcNow < _nextPurge || stopping.IsCancellationRequested)
        {
            return;
        }

        _nextPurge = UtcNow + TimeSpan.FromHours(1);
        int deleted;
        do
        {
            deleted = await store.PurgeAsync(UtcNow - keep, 1000, stopping).ConfigureAwait(false);
        }
        while (deleted == 1000 && !stopping.IsCancellationRequested);
    }

    private DateTime UtcNow => time.GetUtcNow().UtcDateTime;

    private TimeSpan Clamp(TimeSpan sleep) =>
        sleep <= TimeSpan.Zero ? TimeSpan.Zero : sleep < _options.PollInterval ? sleep : _options.PollInterval;

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// Restores a stored message on the scheduler's send: its envelope (MessageId, correlation, addresses, headers) and
    /// its original serialized body. The remaining time to live counts from the original expiration time.
    /// </summary>
    private sealed class StoredMessagePipe(ClaimedMessage message, TimeProvider time) : IPipe<SendContext>
    {
        public Task Send(SendContext context)
        {
            var deserializer = context.Serialization.GetMessageDeserializer(new ContentType(message.ContentType));
            var stored = deserializer.Deserialize(new BytesMessageBody(message.Body), EmptyHeaders.Instance, new Uri(message.Destination));
            context.MessageId = message.MessageId ?? stored.MessageId ?? context.MessageId;
            StoredEnvelope.CopyIdentity(stored, context);
            if (stored.ExpirationTime is { } expiration)
            {
                context.TimeToLive = DateTime.SpecifyKind(expiration, DateTimeKind.Utc).ToUniversalTime() - time.GetUtcNow().UtcDateTime;
            }

            foreach (var header in stored.Headers.GetAll())
            {
                if (!SchedulerHeaders.IsOwn(header.Key))
                {
                    context.Headers.Set(header.Key, header.Value);
                }
            }

            context.Headers.Set(MessageHeaders.SchedulingTokenId, message.Id.ToString("N"));
            context.Serializer = stored.GetMessageSerializer();
            context.GetOrAddPayload(() => ScheduledDispatchPayload.Instance);
            return Task.CompletedTask;
        }

        public void Probe(ProbeContext context) => context.CreateFilterScope("jobLogScheduledMessage");
    }
}
