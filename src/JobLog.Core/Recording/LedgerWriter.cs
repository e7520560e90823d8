using System.Diagnostics;
using JobLog.Internal;
using JobLog.Redaction;
using JobLog.Storage;
using Polly;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace JobLog.Recording;

/// <summary>
/// The single writer: drains the recorder's queue, commits batches, retries with backoff while the database is down
/// (keeping the records), and drains what is left on shutdown.
/// </summary>
internal sealed class LedgerWriter(
    LedgerRecorder recorder,
    LedgerPlanner store,
    LedgerSchema schema,
    JobLogMetrics metrics,
    TimeProvider time,
    ILogger<LedgerWriter> logger,
    Redactor redactor) : BackgroundService
{
    private readonly RecordMasking _masking = new(redactor);
    private readonly List<QueuedRecord> _batch = [];
    private readonly List<LedgerRecord> _records = [];
    private readonly JobLogOptions _options = recorder.Options;
    private ResiliencePipeline? _retry;
    private SqlExecutor? _executor;
    private int _attempt;
    private int _started;
    private bool _batchFromSpool;
    private bool _batchFromJournal;
    private bool _ledgerMoved;
    private volatile bool _stopping;
    private CancellationTokenSource? _drain;
    private bool _keptOnDisk;
    private bool _answered;
    private int _stopRetries;
    private SteadyRate? _conflictRate;

    /// <summary>
    /// How many times a stop tries a batch again whose attempt failed while the database answered (a ledger made again
    /// empty: the next attempt migrates it; a migration that failed), before it leaves what is on disk for the next
    /// process. A database that does not answer ends the stop's drain at once (<see cref="Retrying"/>).
    /// </summary>
    internal const int StopRetries = 3;

    /// <summary>How many times in a row a batch the server rolled back to break a deadlock is written again at once, whole.</summary>
    internal const int ConflictRetries = 3;

    private SteadyRate Conflicts => _conflictRate ??= new SteadyRate(time, TimeSpan.FromMinutes(5));

    // Journaled mode only: there the dispatch is durable in the journal before the writer sees it (HeldDispatches).
    private readonly HeldDispatches? _held = recorder.Options is { Durability: LedgerDurability.Journaled, DispatchHold.Ticks: > 0 } o
        ? new HeldDispatches(time, HoldCapacity(o), o.DispatchHold)
        : null;

    /// <summary>The default of <see cref="JobLogOptions.JournaledGather"/>.</summary>
    internal static readonly TimeSpan DefaultGather = TimeSpan.FromMilliseconds(100);

    // How often a gathering writer looks at the backlog.
    private static readonly TimeSpan GatherStep = TimeSpan.FromMilliseconds(5);

    /// <summary>
    /// The default longest hold of a dispatch waiting for its run (<see cref="HeldDispatches"/>): under a burst the
    /// consumers' lag behind the publishers reaches seconds (docs/benchmarks.md, session 25).
    /// </summary>
    internal static readonly TimeSpan MaxHold = TimeSpan.FromSeconds(5);

    /// <summary>The most dispatches the writer holds back at once: eight batches' worth unless set.</summary>
    internal static int HoldCapacity(JobLogOptions options) =>
        options.DispatchHoldCapacity > 0 ? options.DispatchHoldCapacity : 8 * options.MaxBatchSize;

    /// <summary>
    /// The smallest batch whose dispatches are held for their runs: a quarter of <see cref="JobLogOptions.MaxBatchSize"/>
    /// (500 records by default, some 170 messages a second through the gather). Below it, writing a task row twice costs
    /// the writer little, and the dispatch is in the ledger at once.
    /// </summary>
    internal static int HoldFromBatch(JobLogOptions options) => Math.Max(1, options.MaxBatchSize / 4);

    /// <summary>
    /// For the benchmark: the calling thread's CPU clock (ns). When set, <see cref="CommitCpuNanoseconds"/> adds up the
    /// CPU time of the batches that committed on one thread (planning and the transaction: all of it on SQLite).
    /// </summary>
    internal Func<long>? CpuClock { get; set; }

    private long _commitCpu;

    /// <summary>The writer's CPU time in its commits so far, when <see cref="CpuClock"/> is set.</summary>
    internal long CommitCpuNanoseconds => Interlocked.Read(ref _commitCpu);

    /// <summary>
    /// For the benchmark, with <see cref="CpuClock"/>: the executor's phases (<see cref="SqlExecutor.PhaseTicks"/>) and, at
    /// <see cref="PlanPhase"/>, the planning, in the clock's ns, summed over the batches (the writer bench's split, for the bus).
    /// </summary>
    internal long[]? PhaseTicks { get; set; }

    /// <summary>The slot of <see cref="PhaseTicks"/> that holds the planning.</summary>
    internal const int PlanPhase = 8;

    /// <summary>The slot of <see cref="PhaseTicks"/> that holds the check after each commit that the file did not move.</summary>
    internal const int MovedPhase = 9;

    /// <summary>Dispatches held back from the database for now (they are in the journal, and counted in the backlog).</summary>
    internal int Held => _held?.Count ?? 0;

    /// <summary>What became of held dispatches so far (for the bench): joined their run's batch, written alone, not held (full).</summary>
    internal (long Joined, long WrittenAlone, long NotHeld) HoldOutcomes => _held is { } h ? (h.Joined, h.WrittenAlone, h.NotHeld) : default;

    /// <summary>Starts once: MassTransit's test harness starts every hosted service again after the host did.</summary>
    public override Task StartAsync(CancellationToken cancellationToken) =>
        Interlocked.Exchange(ref _started, 1) == 0 ? base.StartAsync(cancellationToken) : Task.CompletedTask;

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        recorder.Stopping();
        if (ExecuteTask is { IsCompleted: false })
        {
            // The host's shutdown timeout ended before the loop's attempt did: a drain now would share its batch and its
            // connection. What the loop holds is where the journal or the spool keeps it.
            if (recorder.KeptOnDisk)
            {
                Log.KeptOnShutdown(logger, recorder.Backlog, _options.SpoolDirectory);
            }
            else
            {
                Log.LostOnShutdown(logger, recorder.Backlog);
            }

            return;
        }

        // Flush on shutdown: what is queued is written unless the database is down past the host's shutdown timeout, or
        // fails while everything left is on disk (Retrying).
        using var drain = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        drain.CancelAfter(TimeSpan.FromSeconds(30));
        _drain = drain;
        try
        {
            while (_batch.Count > 0 || Held > 0 || recorder.Reader.TryPeek(out _) || recorder.HasSpooled || recorder.HasJournalLeftOvers)
            {
                await WriteNextBatchAsync(drain.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (_keptOnDisk || recorder.KeptOnDisk)
        {
            // The drain's deadline (or the host's shutdown timeout) may end the stop inside its first attempt, before any
            // failure (a silent database whose connect timeout is longer): what is on disk is kept all the same.
            Log.KeptOnShutdown(logger, recorder.Backlog + (_batchFromSpool || _batchFromJournal ? _batch.Count : 0), _options.SpoolDirectory);
        }
        catch (OperationCanceledException)
        {
            Log.LostOnShutdown(logger, _batch.Count + recorder.Backlog);
        }
        finally
        {
            _drain = null;
            if (_executor is not null)
            {
                await _executor.DisposeAsync().ConfigureAwait(false);
                _executor = null;
            }
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // A process started during an outage waits here, before any batch: the waiters learn that the database fails, or
        // with a journal that refuses (a full disk) or none each acknowledgement waited AcknowledgeTimeout (session 28).
        await schema.EnsureReadyAsync(stoppingToken, recorder.StartFailing).ConfigureAwait(false);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                if (_batch.Count == 0 && !recorder.HasSpooled && !recorder.HasJournalLeftOvers)
                {
                    if (_held?.UntilDue is { } due)
                    {
                        await WaitForRecordsAsync(due, stoppingToken).ConfigureAwait(false);
                    }
                    else if (!await WaitToReadAsync(stoppingToken).ConfigureAwait(false))
                    {
                        return;
                    }
                }

                if (_options.Durability == LedgerDurability.Buffered && recorder.Backlog < _options.MaxBatchSize)
                {
                    await Task.Delay(_options.FlushInterval, time, stoppingToken).ConfigureAwait(false);
                }
                else if (_options.Durability == LedgerDurability.Journaled && _batch.Count == 0 && !recorder.HasSpooled && !recorder.HasJournalLeftOvers)
                {
                    await GatherAsync(stoppingToken).ConfigureAwait(false);
                }

                await WriteNextBatchAsync(stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // StopAsync drains the rest.
        }
    }

    /// <summary>
    /// Journaled mode: lets records gather for a larger batch (<see cref="JobLogOptions.JournaledGather"/>) until half a
    /// batch is queued, the time is up, a flush waits or the writer stops. The wait is on the real clock, not the
    /// injected <see cref="TimeProvider"/>: it is about how many records a commit carries, not about the ledger's time,
    /// and a test's fake clock must not stall the writer.
    /// </summary>
    private async Task GatherAsync(CancellationToken stoppingToken)
    {
        var gather = _options.JournaledGather;
        var enough = Math.Max(1, _options.MaxBatchSize / 2);
        if (gather <= TimeSpan.Zero)
        {
            return;
        }

        // Taken before the flush check: a flush that starts in between completes this signal.
        var flush = recorder.FlushRequested;
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        // Held dispatches are in the backlog (uncommitted) but not in the queue: they do not make a batch.
        while (!_stopping && !stoppingToken.IsCancellationRequested && !recorder.FlushPending && recorder.Backlog - Held < enough &&
               System.Diagnostics.Stopwatch.GetElapsedTime(started) < gather)
        {
            await Task.WhenAny(flush, Task.Delay(GatherStep, stoppingToken)).ConfigureAwait(false);
        }

        stoppingToken.ThrowIfCancellationRequested();
    }

    /// <summary>Idle with dispatches held: waits for a record, the oldest held dispatch's due time, or a flush.</summary>
    private async Task WaitForRecordsAsync(TimeSpan due, CancellationToken stoppingToken)
    {
        // Taken before the flush check: a flush that starts in between completes this signal.
        var flush = recorder.FlushRequested;
        if (due <= TimeSpan.Zero || recorder.FlushPending || recorder.Reader.TryPeek(out _))
        {
            return;
        }

        using var timer = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var next = recorder.Reader.WaitToReadAsync(timer.Token).AsTask();
        await Task.WhenAny(next, Task.Delay(due, time, timer.Token), flush).ConfigureAwait(false);
        await timer.CancelAsync().ConfigureAwait(false);
        stoppingToken.ThrowIfCancellationRequested();
    }

    /// <summary>
    /// Idle: waits for a record; with a journal (or a Buffered process's slot for stopped processes' segments), for at most <see cref="LedgerRecorder.StoppedJournalsEvery"/>, so that the
    /// segments of a process that stopped meanwhile are looked for (<see cref="LedgerRecorder.TakeStoppedProcessesJournals"/>)
    /// also while this one has nothing to write.
    /// </summary>
    /// <returns>False when the queue is completed.</returns>
    private async Task<bool> WaitToReadAsync(CancellationToken stoppingToken)
    {
        if (!recorder.TakesStoppedJournals || recorder.Reader.TryPeek(out _))
        {
            return await recorder.Reader.WaitToReadAsync(stoppingToken).ConfigureAwait(false);
        }

        using var look = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        look.CancelAfter(LedgerRecorder.StoppedJournalsEvery);
        try
        {
            return await recorder.Reader.WaitToReadAsync(look.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
        {
            return true;
        }
    }

    /// <summary>One iteration: takes up to a batch of records and commits them, retrying until the database accepts them.</summary>
    /// <returns>The number of records committed.</returns>
    internal async Task<int> WriteNextBatchAsync(CancellationToken cancellationToken)
    {
        if (_batch.Count == 0)
        {
            recorder.TakeStoppedProcessesJournals();
        }

        // The redaction policy's choke point: every text is masked off the business path before any row is written, here
        // or by the journal before it (once per record: a batch that failed keeps its masked records).
        if (_batch.Count == 0 && recorder.HasJournalLeftOvers)
        {
            // What a stopped process journaled is older than anything queued now, so it goes first: a redelivery's run
            // must find the killed attempt's ACTIVE run in the ledger to close it.
            _records.Clear();
            recorder.TakeJournalLeftOvers(_records, _options.MaxBatchSize);
            foreach (var replayed in _records)
            {
                _batch.Add(new QueuedRecord(_masking.Apply(replayed), 0));
            }

            _batchFromJournal = _batch.Count > 0;
        }

        while (!_batchFromSpool && !_batchFromJournal && _batch.Count < _options.MaxBatchSize && recorder.Reader.TryRead(out var queued))
        {
            // The journal masked most queued records already (for the disk): those are not masked twice.
            _batch.Add(queued with { Record = recorder.MaskedByJournal(queued.Sequence) ?? _masking.Apply(queued.Record) });
        }

        if (_held is not null && !_batchFromSpool && !_batchFromJournal)
        {
            // A dispatch waits for its run when the writer is busy, never while it stops or a flush waits for it.
            _held.Sort(_batch, hold: _batch.Count >= HoldFromBatch(_options), releaseAll: _stopping || recorder.FlushPending, recorder.IsJournaled);
            if (_batch.Count == 0 && _held.Count > 0)
            {
                return 0;
            }
        }

        if (_batch.Count == 0)
        {
            // The queue is empty: the spool's records, if any, are next (they are newer than anything queued before).
            _records.Clear();
            recorder.TakeSpooled(_records, _options.MaxBatchSize);
            foreach (var spooled in _records)
            {
                _batch.Add(new QueuedRecord(_masking.Apply(spooled), 0));
            }

            _batchFromSpool = _batch.Count > 0;
        }

        if (_batch.Count == 0)
        {
            return 0;
        }

        _retry ??= Backoff.Retry(
            time, TimeSpan.FromMilliseconds(100), _options.MaxRetryDelay,
            static (ex, ct) => ex is not OperationCanceledException || !ct.IsCancellationRequested, (ex, _, delay) => Retrying(ex, delay));
        await _retry.ExecuteAsync(static (writer, ct) => writer.CommitBatchAsync(ct), this, cancellationToken).ConfigureAwait(false);

        var count = _batch.Count;
        if (_attempt > 0)
        {
            Log.WriteRecovered(logger, count);
            _attempt = 0;
            recorder.SetFailing(false);
        }

        metrics.RecordsWritten.Add(count);
        metrics.BatchSize.Record(count);
        recorder.Committed(_batch, HeldFrom);
        _batch.Clear();
        if (_batchFromSpool)
        {
            _batchFromSpool = false;
            recorder.SpoolReplayed();
        }

        if (_batchFromJournal)
        {
            _batchFromJournal = false;
            recorder.JournalLeftOversReplayed();
        }

        return count;
    }

    /// <summary>The lowest sequence held back (0 when none): the journal keeps it, and nothing from it on counts as committed.</summary>
    private long HeldFrom => _held?.Lowest ?? 0;

    /// <summary>
    /// One attempt at the batch. When it fails while the database is reachable, and not for a reason no record causes (a
    /// full disk, an I/O error, a read-only database: <see cref="LedgerDatabase.IsWriteRefused"/>, session 25), the batch
    /// itself was bad: it is stored record by record, the rejected dropped. Otherwise the failure is thrown, and <see cref="_retry"/> waits and calls
    /// again (keeping the records).
    /// </summary>
    private async ValueTask CommitBatchAsync(CancellationToken cancellationToken)
    {
        _answered = false;
        try
        {
            // Returns at once unless the tables went missing (SchemaMissing); a failed migration keeps the batch for the retry.
            await schema.TryMigrateAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (_drain is not null && ex is not OperationCanceledException)
        {
            // Stopping: a migration that failed where the database answers (a race lost, a transient error) is tried again.
            // One the database never answered is not probed: against a host that drops packets the probe would wait the
            // connect timeout again.
            _answered = !store.Database.IsUnanswered(ex) && await IsReachableAsync(cancellationToken).ConfigureAwait(false);
            throw;
        }

        for (var conflicts = 0; ; conflicts++)
        {
            try
            {
                var started = time.GetTimestamp();
                var cpu = CpuClock is { } clock ? (Thread: Environment.CurrentManagedThreadId, Started: clock()) : default;
                _records.Clear();
                foreach (var queued in _batch)
                {
                    _records.Add(queued.Record);
                }

                await CommitAsync(_records, cancellationToken).ConfigureAwait(false);
                if (CpuClock is { } done && cpu.Thread == Environment.CurrentManagedThreadId)
                {
                    // SQLite commits without yielding: the thread's clock covers the plan and the whole transaction.
                    Interlocked.Add(ref _commitCpu, done() - cpu.Started);
                }

                metrics.CommitDuration.Record(time.GetElapsedTime(started).TotalSeconds);
                return;
            }
            catch (Exception ex) when (conflicts < ConflictRetries && store.Database.IsConflict(ex))
            {
                // The server rolled the batch back to break a deadlock with another writer or a sweep (they meet on task
                // rows and on the rollups' rows their triggers update): nothing in it was wrong, and written record by
                // record (below) a record that met one again would be dropped. Written again, whole, at once.
                if (Conflicts.Add(1, out var count))
                {
                    Log.BatchConflicts(logger, count, LogValue.Brief(ex));
                }
            }
            catch (Exception ex) when ((ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested) && ex is not LedgerMovedException)
            {
                Log.BatchFailed(logger, ex, _batch.Count);
                await ResetExecutorAsync().ConfigureAwait(false);
                // Stopping, a batch the database never answered is not the batch's fault, and the probe would wait as long again
                // against a host that drops packets (as after a migration, above).
                if (await SchemaMissingAsync(ex, cancellationToken).ConfigureAwait(false)
                    || store.Database.IsWriteRefused(ex)
                    || (_drain is not null && store.Database.IsUnanswered(ex))
                    || !await IsReachableAsync(cancellationToken).ConfigureAwait(false)
                    || !await CommitOneByOneAsync(cancellationToken).ConfigureAwait(false))
                {
                    throw;
                }

                return;
            }
        }
    }

    /// <summary>Before each wait of <see cref="_retry"/>: the database is failing (waiters are released), logged.</summary>
    private void Retrying(Exception exception, TimeSpan delay)
    {
        _attempt++;
        recorder.NoteFailure(exception);
        recorder.SetFailing(true);
        Log.WriteFailed(logger, exception, _batch.Count + recorder.Backlog, _attempt, delay);
        if (_drain is { } drain && recorder.KeptOnDisk && !(_answered && _stopRetries++ < StopRetries))
        {
            // Stopping, and the database fails: what is not written is on disk already (the journal, the spool, stopped
            // processes' journals) and the next process writes it. Waiting for the database to come back within the
            // host's shutdown timeout only holds up the stop, or ends it in the orchestrator's SIGKILL (session 26).
            // A database that answered gets a few quick attempts first (StopRetries): the next process may never start
            // on this directory (a replica scaled down).
            _keptOnDisk = true;
            drain.Cancel();
        }
    }

    private async Task CommitAsync(IReadOnlyList<LedgerRecord> records, CancellationToken cancellationToken)
    {
        if (_ledgerMoved && !store.Database.Exists(schema.ConnectionString))
        {
            // Opening it would make an empty file where the operator's ledger belongs (MigrateOnStartup off).
            throw new LedgerMovedException(Ledger);
        }

        _executor ??= await store.Database.OpenAsync(
            schema.ConnectionString, cancellationToken, _options.CommandTimeout,
            asynchronousCommit: _options.Durability == LedgerDurability.Buffered, prepare: true).ConfigureAwait(false);
        var clock = CpuClock;
        var phases = clock is null ? null : PhaseTicks;
        var planned = phases is null ? 0 : clock!();
        var plan = store.Plan(records);
        if (phases is not null)
        {
            phases[PlanPhase] += clock!() - planned;
            _executor.PhaseClock = clock!;
        }

        _executor.PhaseTicks = phases;
        await store.CommitAsync(_executor, plan, _options.CommandTimeout, cancellationToken).ConfigureAwait(false);

        // Before the journal is checkpointed past them: a commit into a deleted (or replaced) file is in no ledger.
        var checking = phases is null ? 0 : clock!();
        var moved = store.Database.HasMoved(_executor);
        if (phases is not null && phases.Length > MovedPhase)
        {
            phases[MovedPhase] += clock!() - checking;
        }

        if (moved)
        {
            await LedgerMovedAsync(records.Count).ConfigureAwait(false);
            throw new LedgerMovedException(Ledger);
        }

        if (_ledgerMoved)
        {
            _ledgerMoved = false;
            recorder.LedgerFound();
        }
    }

    /// <summary>The ledger's name in log messages and the health check (<see cref="LedgerDatabase.Identity"/>).</summary>
    private string Ledger => store.Database.Identity(schema.ConnectionString);

    /// <summary>
    /// The ledger the writer had open was deleted or replaced at its path (session 22): the connections to it are closed,
    /// and the batch is kept (the caller throws) for the ledger at the path: made again by the next attempt's migration when
    /// JobLog migrates, else waited for (<see cref="CommitAsync"/> opens nothing while no file is there).
    /// </summary>
    private async Task LedgerMovedAsync(int count)
    {
        await ResetExecutorAsync().ConfigureAwait(false);
        store.Database.ForgetMovedLedger();
        _ledgerMoved = true;
        var migrate = schema.LedgerMoved();
        if (migrate)
        {
            Log.LedgerMovedMigrating(logger, Ledger, count);
        }
        else
        {
            Log.LedgerMovedWaiting(logger, Ledger, count);
        }

        recorder.LedgerMoved(Ledger, missing: !migrate);
    }

    /// <summary>Commits the batch record by record; drops a record only when the database is reachable right after it failed.</summary>
    /// <returns>False when the database became unreachable (the records not yet written stay in the batch).</returns>
    private async Task<bool> CommitOneByOneAsync(CancellationToken cancellationToken)
    {
        var remaining = new List<QueuedRecord>(_batch);
        var written = new List<QueuedRecord>();
        var done = new bool[remaining.Count];
        for (var i = 0; i < remaining.Count; i++)
        {
            var queued = remaining[i];
            var record = queued.Record;
            try
            {
                await CommitAsync([record], cancellationToken).ConfigureAwait(false);
                written.Add(queued);
                done[i] = true;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                await ResetExecutorAsync().ConfigureAwait(false);
                if (ex is LedgerMovedException
                    || store.Database.IsConflict(ex)
                    || await SchemaMissingAsync(ex, cancellationToken).ConfigureAwait(false)
                    || store.Database.IsWriteRefused(ex)
                    || !await IsReachableAsync(cancellationToken).ConfigureAwait(false))
                {
                    recorder.Committed(written, HeldFrom);
                    _batch.Clear();
                    for (var j = 0; j < remaining.Count; j++)
                    {
                        if (!done[j])
                        {
                            _batch.Add(remaining[j]);
                        }
                    }

                    return false;
                }

                // Rejected for what it holds (a text the database refuses): its row is written with markers instead.
                if (RecordMasking.Degrade(record) is { } degraded && await TryCommitAsync(degraded, cancellationToken).ConfigureAwait(false))
                {
                    Log.RecordDegraded(logger, ex, record.GetType().Name);
                    written.Add(queued);
                    done[i] = true;
                    continue;
                }

                metrics.RecordsDropped.Add(1);
                Log.RecordRejected(logger, ex, record.GetType().Name);
            }
        }

        return true;
    }

    /// <summary>
    /// True when the failure is the ledger's schema gone (a table missing, and JobLog's migrations history with it: the
    /// database made again empty): no record is at fault, so none is dropped; the schema is migrated again before the next
    /// attempt (<see cref="LedgerSchema.SchemaMissingAsync"/>). After the ledger moved from under the writer, migrated or
    /// not: the file at its path may be one a connection made empty meanwhile, until a migrated one is put there.
    /// </summary>
    private async Task<bool> SchemaMissingAsync(Exception exception, CancellationToken cancellationToken) =>
        // The database answered: the next attempt migrates (a stop tries it, Retrying).
        _answered = store.Database.IsSchemaMissing(exception) && (await schema.SchemaMissingAsync(cancellationToken).ConfigureAwait(false) || _ledgerMoved);

    private async Task<bool> TryCommitAsync(LedgerRecord record, CancellationToken cancellationToken)
    {
        try
        {
            await CommitAsync([record], cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException and not LedgerMovedException)
        {
            Log.DegradedRecordRefused(logger, ex, record.GetType().Name);
            metrics.RecordingFailed("writer.degraded");
            await ResetExecutorAsync().ConfigureAwait(false);
            return false;
        }
    }

    private async Task<bool> IsReachableAsync(CancellationToken cancellationToken)
    {
        try
        {
            await using var executor = await store.Database.OpenAsync(schema.ConnectionString, cancellationToken, _options.CommandTimeout, pooled: false).ConfigureAwait(false);
            await using var command = executor.Connection.CreateCommand();
            // A write probe: a locked SQLite file or a read-only PostgreSQL must count as unreachable.
            command.CommandText = store.Database.WriteProbe;
            var writable = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
            return writable is null or true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return false;
        }
    }

    private async Task ResetExecutorAsync()
    {
        if (_executor is not null)
        {
            try
            {
                await _executor.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Log.ExecutorResetFailed(logger, ex);
                metrics.RecordingFailed("writer.reset");
            }

            _executor = null;
        }
    }
}

/// <summary>The writer's ledger was deleted or replaced while it had it open (<see cref="LedgerDatabase.HasMoved"/>): the batch is kept.</summary>
internal sealed class LedgerMovedException(string ledger)
    : Exception($"The ledger {ledger} was deleted or replaced while JobLog's writer had it open; the batch is kept for the ledger at its path.");
