using System.Diagnostics.Metrics;
using JobLog.Recording;

namespace JobLog.Internal;

/// <summary>
/// The <c>JobLog</c> meter: what the ledger records and how its writer keeps up. Every instrument is created once per
/// meter; OpenTelemetry users export them with <c>.AddMeter("JobLog")</c>.
/// </summary>
internal sealed class JobLogMetrics : IDisposable
{
    public const string MeterName = "JobLog";

    private readonly Meter _meter;

    public JobLogMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(MeterName);
        TasksDispatched = _meter.CreateCounter<long>("joblog.tasks.dispatched", "{task}", "Tasks recorded on dispatch, by task name.");
        RunsStarted = _meter.CreateCounter<long>("joblog.runs.started", "{run}", "Consume attempts that started.");
        RunsFinished = _meter.CreateCounter<long>("joblog.runs", "{run}", "Runs that ended, by state (a RETRIED run that turns out to be the last one is counted again as FAILED).");
        TasksExpired = _meter.CreateCounter<long>("joblog.tasks.expired", "{task}", "Tasks the sweeper set to EXPIRED.");
        RunsExpired = _meter.CreateCounter<long>(
            "joblog.runs.expired", "{run}", "ACTIVE runs the sweeper closed as EXPIRED, by reason (host: their process stopped sending heartbeats).");
        RecordsWritten = _meter.CreateCounter<long>("joblog.writer.records", "{record}", "Records committed to the ledger.");
        RecordsDropped = _meter.CreateCounter<long>("joblog.writer.dropped", "{record}", "Records lost (queue and spool full, or rejected by the database).");
        RecordsSpooled = _meter.CreateCounter<long>("joblog.writer.spooled", "{record}", "Records written to the spool file because the queue was full.");
        JournalRefused = _meter.CreateCounter<long>(
            "joblog.journal.refused", "{record}", "Records the local journal could not take (disk full or failing): their acknowledgements wait for the database.");
        JournalLeftOversLost = _meter.CreateCounter<long>(
            "joblog.journal.leftovers_lost", "{segment}", "Journal segments a stopped process left that could not be read back (gone or refused before they were replayed): their records are lost.");
        BatchSize = _meter.CreateHistogram<int>("joblog.writer.batch_size", "{record}", "Records per commit.");
        CommitDuration = _meter.CreateHistogram<double>("joblog.writer.commit_duration", "s", "Time to plan and commit one batch.");
        AcknowledgeWait = _meter.CreateHistogram<double>(
            "joblog.acknowledge.wait_duration", "s", "How long a delivery or a publish waited for its records to be durable (journaled, or committed in Committed mode).");
        SweepBatchDuration = _meter.CreateHistogram<double>(
            "joblog.sweeper.batch_duration", "s", "Time one sweep batch holds its transaction, from its claim to its commit (SQLite: the write lock the writer waits behind).");
        RowsPurged = _meter.CreateCounter<long>("joblog.retention.purged", "{row}", "Ledger rows deleted by retention or purge, by log kind.");
        DayDropLockDuration = _meter.CreateHistogram<double>(
            "joblog.retention.day_lock_duration", "s",
            "Time one day's drop on a partitioned PostgreSQL ledger holds the tasks and runs tables locked, from its lock to its commit (the dropped day's files are freed after).");
        RecordingFailures = _meter.CreateCounter<long>(
            "joblog.recording.failures", "{failure}", "Failures inside JobLog's recording, logged and passed over (the business path went on), by where.");
    }

    public Counter<long> TasksDispatched { get; }

    public Counter<long> RunsStarted { get; }

    public Counter<long> RunsFinished { get; }

    public Counter<long> TasksExpired { get; }

    public Counter<long> RunsExpired { get; }

    public Counter<long> RecordsWritten { get; }

    public Counter<long> RecordsDropped { get; }


    public Counter<long> RecordsSpooled { get; }

    public Counter<long> JournalRefused { get; }

    public Counter<long> JournalLeftOversLost { get; }

    public Histogram<int> BatchSize { get; }

    public Histogram<double> CommitDuration { get; }


    public Histogram<double> AcknowledgeWait { get; }

    public Histogram<double> SweepBatchDuration { get; }

    public Counter<long> RowsPurged { get; }

    public Histogram<double> DayDropLockDuration { get; }

    public Counter<long> RecordingFailures { get; }

    /// <summary>Counts a failure of the recording at <paramref name="where"/> (a short stable name, e.g. <c>dispatch</c>).</summary>
    public void RecordingFailed(string where)
    {
        if (RecordingFailures.Enabled)
        {
            RecordingFailures.Add(1, new KeyValuePair<string, object?>("joblog.recording.where", where));
        }
    }

    public void ObserveBacklog(Func<int> backlog) =>
        _meter.CreateObservableGauge("joblog.writer.backlog", backlog, "{record}", "Records waiting to be written.");

    /// <summary>Counts what a record says happened. Called once per record when it is handed to the recorder.</summary>
    public void Recorded(LedgerRecord record)
    {
        switch (record)
        {
            case TaskDispatched d when TasksDispatched.Enabled:
                TasksDispatched.Add(1, new KeyValuePair<string, object?>("joblog.task.name", d.Task.Name));
                break;
            case RunStarted s:
                RunsStarted.Add(1);
                if (s.Run.State != TaskRunState.Active)
                {
                    RunFinished(s.Run.State);
                }

                break;
            case RunFinished f:
                RunFinished(f.State);
                break;
            case RunFailedForGood:
                RunFinished(TaskRunState.Failed);
                break;
        }
    }

    public void Dispose() => _meter.Dispose();

    private void RunFinished(TaskRunState state)
    {
        if (RunsFinished.Enabled)
        {
            RunsFinished.Add(1, new KeyValuePair<string, object?>("joblog.run.state", StateTag(state)));
        }
    }

    private static string StateTag(TaskRunState state) => state switch
    {
        TaskRunState.Active => "active",
        TaskRunState.Succeeded => "succeeded",
        TaskRunState.Failed => "failed",
        TaskRunState.Retried => "retried",
        TaskRunState.Expired => "expired",
        _ => "unknown",
    };
}
