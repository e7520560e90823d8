using System.Globalization;
using System.Linq.Expressions;
using System.Threading.RateLimiting;
using JobLog.Failures;
using JobLog.Storage;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace JobLog.MassTransit.Internal.Failures;

/// <summary>
/// Sends pending retries (docs/architecture.md#failures) in staged batches: claim (State = Sending, ClaimedAt) → send
/// each kept message back to its input address, rate-limited → mark the batch sent. A stop lets the batch's sends in
/// flight finish and gives the unsent rest back. A claim left "sending" longer than
/// <see cref="FailureOptions.RetryClaimLease"/> (a crash between send and mark) is taken over: counted sent when the
/// ledger has a run of its task that started after the claim, else sent again. Runs while the bus runs.
/// </summary>
internal sealed class FailureRetrySender : IRunsWithBus, IDisposable
{
    private const int SendConcurrency = 16;
    private readonly JobLogContextFactory _contexts;
    private readonly KeptMessageCodec _codec;
    private readonly RetrySignal _signal;
    private readonly FailureOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly RateLimiter _limiter;
    private readonly Lock _lock = new();
    private CancellationTokenSource? _stopping;
    private Task? _loop;
    private DateTime _nextStrandedCheck = DateTime.MinValue;

    public FailureRetrySender(JobLogContextFactory contexts, KeptMessageCodec codec, RetrySignal signal, IOptions<JobLogOptions> options, TimeProvider time, ILogger logger)
    {
        _contexts = contexts;
        _codec = codec;
        _signal = signal;
        _options = options.Value.Failures;
        _time = time;
        _logger = logger;
        var perSecond = _options.RetriesPerSecond;
        // Refilled ten times a second (smoother than a burst per second) unless fewer than ten a second are allowed.
        _limiter = new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = Math.Max(1, perSecond / 10),
            TokensPerPeriod = Math.Max(1, perSecond / 10),
            ReplenishmentPeriod = perSecond >= 10 ? TimeSpan.FromMilliseconds(100) : TimeSpan.FromSeconds(1.0 / perSecond),
            QueueLimit = int.MaxValue,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
            AutoReplenishment = true,
        });
    }

    /// <summary>Who sends (machine and process).</summary>
    public string Name { get; } = $"{Environment.MachineName}/{Environment.ProcessId}";

    public static FailureRetrySender Create(IServiceProvider provider) => new(
        provider.GetRequiredService<JobLogContextFactory>(),
        provider.GetRequiredService<KeptMessageCodec>(),
        provider.GetRequiredService<RetrySignal>(),
        provider.GetRequiredService<IOptions<JobLogOptions>>(),
        provider.GetRequiredService<TimeProvider>(),
        provider.GetRequiredService<ILoggerFactory>().CreateLogger("JobLog.MassTransit.Failures"))
    {
        Buses = BusDirectory.Of(provider.GetRequiredService<JobLog.Recording.LedgerRecorder>()),
        Stranded = provider.GetService<JobLog.Recording.StrandedWork>(),
        Refusals = provider.GetService<LedgerRefusals>(),
    };

    /// <summary>Pauses the sends while the ledger refuses writes as read-only (said once there); null in unit tests.</summary>
    public LedgerRefusals? Refusals { get; init; }

    /// <summary>Where the stranded check leaves its line for this host's heartbeat (the hosts page); null in unit tests.</summary>
    public JobLog.Recording.StrandedWork? Stranded { get; init; }

    /// <summary>The application's running buses (several with <c>AddMassTransit&lt;TBus&gt;</c>); null in unit tests.</summary>
    public BusDirectory? Buses { get; init; }

    /// <summary>Starts sending once <paramref name="busReady"/> completes. Idempotent.</summary>
    public void Start(IBus bus, Task busReady)
    {
        lock (_lock)
        {
            // Over a ledger opened read-only every claim would fail ("attempt to write a readonly database"), logged at each poll.
            if (_loop is not null || _contexts.ReadOnly)
            {
                return;
            }

            _stopping = new CancellationTokenSource();
            var stopping = _stopping.Token;
            _loop = Task.Run(() => RunAsync(bus, busReady, stopping), CancellationToken.None);
        }
    }

    /// <summary>Stops: the batch's sends in flight finish and are marked; its unsent retries are given back.</summary>
    public async Task StopAsync()
    {
        Task? loop;
        CancellationTokenSource? stopping;
        lock (_lock)
        {
            (loop, stopping) = (_loop, _stopping);
            (_loop, _stopping) = (null, null);
        }

        if (loop is null || stopping is null)
        {
            return;
        }

        await stopping.CancelAsync().ConfigureAwait(false);
        await loop.ConfigureAwait(false);
        stopping.Dispose();
    }

    public void Dispose() => _limiter.Dispose();

    private async Task RunAsync(IBus bus, Task busReady, CancellationToken stopping)
    {
        try
        {
            await busReady.WaitAsync(stopping).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        catch (Exception ex)
        {
            Log.SenderFailed(_logger, ex, _options.RetryPollInterval);
            return;
        }

        Log.SenderStarted(_logger, Name);
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                // An idle pass only reads: it says nothing of whether the ledger takes writes again (Wrote).
                var handled = Refusals?.MayWrite() == false ? 0 : await RunOnceAsync(bus, stopping).ConfigureAwait(false);
                if (handled == 0)
                {
                    await _signal.WaitAsync(_options.RetryPollInterval, _time, stopping).ConfigureAwait(false);
                }
                else
                {
                    Refusals?.Wrote();
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                if (Refusals?.Refused(ex) != true)
                {
                    Log.SenderFailed(_logger, ex, _options.RetryPollInterval);
                }

                try
                {
                    await Task.Delay(_options.RetryPollInterval, _time, stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>One staged batch: takes over expired claims, then claims, sends and marks up to a batch of retries.</summary>
    /// <returns>The retries handled (sent, skipped or failed).</returns>
    internal async Task<int> RunOnceAsync(IBus bus, CancellationToken stopping)
    {
        if (!await AnyInProgressAsync(stopping).ConfigureAwait(false))
        {
            // Idle: one read on the partial index, no write statement (SQLite's write lock belongs to the writer). Nothing
            // waits, so nothing is stranded.
            Stranded?.Set(JobLog.Recording.StrandedKind.Retries, null);
            return 0;
        }

        await RecoverAsync(stopping).ConfigureAwait(false);
        var claimed = await ClaimAsync(stopping).ConfigureAwait(false);
        if (claimed.Count == 0)
        {
            await WarnStrandedWhenDueAsync(stopping).ConfigureAwait(false);
            return 0;
        }

        var batch = await RetryBatch.LoadAsync(_contexts, _codec, claimed, stopping).ConfigureAwait(false);
        var sent = new List<FailureActionItemLog>();
        var given = new List<FailureActionItemLog>();
        await Parallel.ForEachAsync(batch.Ready, new ParallelOptions { MaxDegreeOfParallelism = SendConcurrency }, async (retry, _) =>
        {
            if (stopping.IsCancellationRequested)
            {
                lock (given)
                {
                    given.Add(retry.Item);
                }

                return;
            }

            try
            {
                using var lease = await _limiter.AcquireAsync(1, stopping).ConfigureAwait(false);

                // Never begin a send that could outlive the claim: past its lease another sender takes the retry over and
                // sends it (a low RetriesPerSecond, a slow broker or a pause can hold a batch that long). Given back, it
                // is claimed again at once.
                if (_time.GetUtcNow().UtcDateTime > retry.Item.ClaimedAt + _options.RetryClaimLease / 2)
                {
                    lock (given)
                    {
                        given.Add(retry.Item);
                    }

                    return;
                }

                // Nor let one outlive it: a send that hangs (a blocked broker, a confirm that never comes) is cancelled at
                // three quarters of the lease, before another sender may take the retry over and send it again. Its outcome
                // is unknown, so it is ended as failed, for the operator to look at, not given back.
                using var deadline = new CancellationTokenSource(SendDeadline(retry.Item), _time);
                try
                {
                    await retry.SendAsync(Buses?.For(retry.Message.InputAddress, bus) ?? bus, _time, deadline.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (deadline.IsCancellationRequested)
                {
                    Log.RetrySendTimedOut(_logger, retry.Item.TaskId, retry.Message.InputAddress, _options.RetryClaimLease);
                    lock (batch.Failed)
                    {
                        batch.Failed.Add((retry.Item, SendTimedOutReason));
                    }

                    return;
                }

                lock (sent)
                {
                    sent.Add(retry.Item);
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                lock (given)
                {
                    given.Add(retry.Item);
                }
            }
            catch (Exception ex)
            {
                Log.RetrySendFailed(_logger, ex, retry.Item.TaskId, retry.Message.InputAddress);
                lock (batch.Failed)
                {
                    batch.Failed.Add((retry.Item, "send failed: " + ex.Message));
                }
            }
        }).ConfigureAwait(false);

        await MarkAsync(sent, given, batch).ConfigureAwait(false);
        return sent.Count + batch.Skipped.Count + batch.Failed.Count;
    }

    /// <summary>What a retry whose send was cancelled at its deadline is ended with (<see cref="FailureActionItemState.Failed"/>).</summary>
    internal const string SendTimedOutReason =
        "send did not finish within three quarters of the claim's lease (Failures.RetryClaimLease) and was cancelled: "
        + "it may have reached the broker; look at the task's runs before retrying it again";

    /// <summary>How long a send of <paramref name="item"/> may take: until three quarters of its claim's lease.</summary>
    private TimeSpan SendDeadline(FailureActionItemLog item)
    {
        var left = item.ClaimedAt!.Value + (_options.RetryClaimLease * 0.75) - _time.GetUtcNow().UtcDateTime;
        return left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }

    private async Task<bool> AnyInProgressAsync(CancellationToken ct)
    {
        var db = await _contexts.OpenUnpooledAsync(ct).ConfigureAwait(false);
        await using (db.ConfigureAwait(false))
        {
            return await db.FailureActionItems.AnyAsync(
                i => i.State == FailureActionItemState.Pending || i.State == FailureActionItemState.Sending, ct).ConfigureAwait(false);
        }
    }

    private async Task RecoverAsync(CancellationToken ct)
    {
        var cutoff = _time.GetUtcNow().UtcDateTime - _options.RetryClaimLease;
        var db = await _contexts.OpenUnpooledAsync(ct).ConfigureAwait(false);
        await using (db.ConfigureAwait(false))
        {
            var expired = db.FailureActionItems.Where(i => i.State == FailureActionItemState.Sending && i.ClaimedAt < cutoff);
            var sent = await expired.Where(i => db.TaskRunLogs.Any(r => r.TaskId == i.TaskId && r.Start >= i.ClaimedAt))
                .ExecuteUpdateAsync(s => s.SetProperty(i => i.State, FailureActionItemState.Done).SetProperty(i => i.DoneAt, i => i.ClaimedAt), ct)
                .ConfigureAwait(false);
            var again = await expired
                .ExecuteUpdateAsync(s => s.SetProperty(i => i.State, FailureActionItemState.Pending).SetProperty(i => i.ClaimedAt, (DateTime?)null), ct)
                .ConfigureAwait(false);
            if (sent + again > 0)
            {
                Log.Recovered(_logger, sent, again);
            }
        }
    }

    private async Task<List<FailureActionItemLog>> ClaimAsync(CancellationToken ct)
    {
        var db = await _contexts.OpenUnpooledAsync(ct).ConfigureAwait(false);
        await using (db.ConfigureAwait(false))
        {
            var pending = db.FailureActionItems.AsNoTracking().Where(i => i.State == FailureActionItemState.Pending);
            if (Buses?.Hosts is { Count: > 0 } brokers)
            {
                // Only what this process's buses reach: another process on the ledger may run other buses (a kept message
                // of theirs sent through ours went to our broker's exchange of that name, or nowhere). Items whose kept
                // message is gone are claimed by anyone (they are skipped).
                var foreign = db.KeptMessages.Where(Foreign(brokers)).Select(k => k.Id);
                pending = pending.Where(i => i.KeptMessageId == null || !foreign.Contains(i.KeptMessageId.Value));
            }

            var candidates = await pending
                .OrderBy(i => i.ActionId).ThenBy(i => i.TaskId).Take(_options.RetryBatchSize)
                .Select(i => new { i.ActionId, i.TaskId }).ToListAsync(ct).ConfigureAwait(false);
            var claimed = new List<FailureActionItemLog>(candidates.Count);
            foreach (var action in candidates.GroupBy(c => c.ActionId))
            {
                var tasks = action.Select(c => c.TaskId).ToList();
                // The claim's time is its token: read back what this statement claimed (another sender may have taken some).
                var now = _time.GetUtcNow().UtcDateTime.AddTicks(Random.Shared.Next(1, 10_000));
                await db.FailureActionItems.Where(i => i.ActionId == action.Key && tasks.Contains(i.TaskId) && i.State == FailureActionItemState.Pending)
                    .ExecuteUpdateAsync(s => s.SetProperty(i => i.State, FailureActionItemState.Sending).SetProperty(i => i.ClaimedAt, now), ct)
                    .ConfigureAwait(false);
                claimed.AddRange(await db.FailureActionItems.AsNoTracking()
                    .Where(i => i.ActionId == action.Key && tasks.Contains(i.TaskId) && i.State == FailureActionItemState.Sending && i.ClaimedAt == now)
                    .ToListAsync(CancellationToken.None).ConfigureAwait(false));
            }

            return claimed;
        }
    }

    /// <summary>
    /// Now and then (every thirty poll intervals) while nothing here can be claimed, a warning when retries asked for more than
    /// ten poll intervals ago wait for a broker none of this process's buses reaches: left to a process that runs that bus,
    /// they would otherwise wait in silence when none does.
    /// </summary>
    private async Task WarnStrandedWhenDueAsync(CancellationToken ct)
    {
        var now = _time.GetUtcNow().UtcDateTime;
        if (now < _nextStrandedCheck || Buses?.Hosts is not { Count: > 0 } brokers)
        {
            return;
        }

        _nextStrandedCheck = now + 30 * _options.RetryPollInterval;
        var waited = 10 * _options.RetryPollInterval;
        var cutoff = now - waited;
        var db = await _contexts.OpenUnpooledAsync(ct).ConfigureAwait(false);
        await using (db.ConfigureAwait(false))
        {
            var asked = db.FailureActions.Where(a => a.RequestedAt < cutoff).Select(a => a.Id);
            var stranded = db.KeptMessages.Where(Foreign(brokers))
                .Join(db.FailureActionItems.Where(i => i.State == FailureActionItemState.Pending && asked.Contains(i.ActionId)),
                    k => (Guid?)k.Id, i => i.KeptMessageId, (k, i) => k.InputAddress);
            var count = await stranded.CountAsync(ct).ConfigureAwait(false);
            string? line = null;
            if (count > 0)
            {
                var destination = await stranded.OrderBy(a => a).FirstAsync(ct).ConfigureAwait(false);
                Log.RetriesStranded(_logger, count, waited, destination);
                line = string.Create(CultureInfo.InvariantCulture,
                    $"{count} {(count == 1 ? "retry" : "retries")} asked for more than {waited} ago for a broker none of this process's buses reaches (e.g. {destination})");
            }

            Stranded?.Set(JobLog.Recording.StrandedKind.Retries, line);
        }
    }

    /// <summary>
    /// A kept message whose input address is absolute (<c>rabbitmq://…</c>) and under none of <paramref name="brokers"/>
    /// (the host addresses of this process's buses, compared without case): no bus here can send it back.
    /// </summary>
    internal static Expression<Func<KeptMessageLog, bool>> Foreign(IReadOnlyList<string> brokers)
    {
        var kept = Expression.Parameter(typeof(KeptMessageLog), "k");
        var address = Expression.Property(kept, nameof(KeptMessageLog.InputAddress));
        var lower = Expression.Call(address, typeof(string).GetMethod(nameof(string.ToLower), Type.EmptyTypes)!);
        var startsWith = typeof(string).GetMethod(nameof(string.StartsWith), [typeof(string)])!;
        Expression body = Expression.Call(address, typeof(string).GetMethod(nameof(string.Contains), [typeof(string)])!, Expression.Constant("://"));
        foreach (var broker in brokers)
        {
            // A closure's field, not a constant: a parameter of the statement.
            var value = Expression.Property(Expression.Constant(new Holder(broker.ToLowerInvariant())), nameof(Holder.Value));
            body = Expression.AndAlso(body, Expression.Not(Expression.Call(lower, startsWith, value)));
        }

        return Expression.Lambda<Func<KeptMessageLog, bool>>(body, kept);
    }

    private sealed record Holder(string Value);

    /// <summary>The items of <paramref name="tasks"/> still held by the claim <paramref name="claim"/> (its action and time).</summary>
    private static IQueryable<FailureActionItemLog> Claimed(JobLogDbContext db, (Guid ActionId, DateTime? ClaimedAt) claim, List<Guid> tasks) =>
        db.FailureActionItems.Where(i => i.ActionId == claim.ActionId && tasks.Contains(i.TaskId)
            && i.State == FailureActionItemState.Sending && i.ClaimedAt == claim.ClaimedAt);

    /// <summary>
    /// Ends this sender's claims. Each statement matches the claim's time (its token, <see cref="ClaimAsync"/>): a claim
    /// another sender took over is that sender's to end.
    /// </summary>
    private async Task MarkAsync(List<FailureActionItemLog> sent, List<FailureActionItemLog> given, RetryBatch batch)
    {
        var now = _time.GetUtcNow().UtcDateTime;
        var db = await _contexts.OpenUnpooledAsync(CancellationToken.None).ConfigureAwait(false);
        await using (db.ConfigureAwait(false))
        {
            var lost = 0;
            foreach (var claim in sent.GroupBy(i => (i.ActionId, i.ClaimedAt)))
            {
                lost += claim.Count() - await Claimed(db, claim.Key, claim.Select(i => i.TaskId).ToList())
                    .ExecuteUpdateAsync(s => s.SetProperty(i => i.State, FailureActionItemState.Done).SetProperty(i => i.DoneAt, now), CancellationToken.None)
                    .ConfigureAwait(false);
            }

            foreach (var claim in given.GroupBy(i => (i.ActionId, i.ClaimedAt)))
            {
                await Claimed(db, claim.Key, claim.Select(i => i.TaskId).ToList())
                    .ExecuteUpdateAsync(s => s.SetProperty(i => i.State, FailureActionItemState.Pending).SetProperty(i => i.ClaimedAt, (DateTime?)null), CancellationToken.None)
                    .ConfigureAwait(false);
            }

            var ended = batch.Skipped.Select(x => (x.Item, x.Reason, State: FailureActionItemState.Skipped))
                .Concat(batch.Failed.Select(x => (x.Item, x.Reason, State: FailureActionItemState.Failed)));
            foreach (var (item, reason, state) in ended)
            {
                await Claimed(db, (item.ActionId, item.ClaimedAt), [item.TaskId])
                    .ExecuteUpdateAsync(s => s.SetProperty(i => i.State, state).SetProperty(i => i.Reason, reason).SetProperty(i => i.DoneAt, now), CancellationToken.None)
                    .ConfigureAwait(false);
            }

            if (lost > 0)
            {
                Log.RetryClaimLost(_logger, lost);
            }
        }
    }
}
