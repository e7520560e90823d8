using System.Diagnostics.Metrics;

namespace JobLog.Internal;

/// <summary>The <c>JobLog</c> meter: what the ledger records and how its writer keeps up.</summary>
internal sealed class JobLogMetrics : IDisposable
{
    public const string MeterName = "JobLog";

    private readonly Meter _meter;

    public JobLogMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(MeterName);
        TasksDispatched = _meter.CreateCounter<long>("joblog.tasks.dispatched", "{task}", "Tasks recorded on dispatch.");
        RunsFinished = _meter.CreateCounter<long>("joblog.runs", "{run}", "Runs that ended, by state.");
        TasksExpired = _meter.CreateCounter<long>("joblog.tasks.expired", "{task}", "Tasks the sweeper set to EXPIRED.");
        RecordsWritten = _meter.CreateCounter<long>("joblog.writer.records", "{record}", "Records committed to the ledger.");
        RecordsDropped = _meter.CreateCounter<long>("joblog.writer.dropped", "{record}", "Records lost (queue full without spool, or rejected by the database).");
        BatchSize = _meter.CreateHistogram<int>("joblog.writer.batch_size", "{record}", "Records per commit.");
        CommitDuration = _meter.CreateHistogram<double>("joblog.writer.commit_duration", "s", "Time to plan and commit one batch.");
    }

    public Counter<long> TasksDispatched { get; }

    public Counter<long> RunsFinished { get; }

    public Counter<long> TasksExpired { get; }

    public Counter<long> RecordsWritten { get; }

    public Counter<long> RecordsDropped { get; }

    public Histogram<int> BatchSize { get; }

    public Histogram<double> CommitDuration { get; }

    public void ObserveBacklog(Func<int> backlog) =>
        _meter.CreateObservableGauge("joblog.writer.backlog", backlog, "{record}", "Records waiting to be written.");

    public void Dispose() => _meter.Dispose();
}
