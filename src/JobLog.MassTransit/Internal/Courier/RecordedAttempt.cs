using JobLog.Recording;

namespace JobLog.MassTransit.Internal.Courier;

/// <summary>
/// One recorded attempt of a routing slip activity or a job: the run's start record, the ambient frame that captures its
/// output and links what it dispatches, and its end. The delivery's state (when the delivery filter runs) tracks the
/// records, so that in Acknowledged mode the message is acknowledged after they are committed.
/// </summary>
internal sealed class RecordedAttempt
{
    private readonly TaskLoggingServices _services;
    private readonly DeliveryState? _delivery;
    private readonly OutputBuffer _output;

    // The monotonic clock at the start: the run's stop is its start plus the time since (TaskLoggingServices.Since).
    private readonly long _started;

    private RecordedAttempt(TaskLoggingServices services, DeliveryState? delivery, RunPayload run)
    {
        _services = services;
        _delivery = delivery;
        Run = run;
        _started = services.Time.GetTimestamp();
        _output = new OutputBuffer(services.Options.Redaction.MaxBodyLength);
    }

    public RunPayload Run { get; }

    public static RecordedAttempt Start(TaskLoggingServices services, DeliveryState? delivery, RunPayload run, TaskPayload seed, DeferredRendering? rendering = null)
    {
        var attempt = new RecordedAttempt(services, delivery, run);
        attempt.Track(services.Recorder.Enqueue(new RunStarted(run, seed, expireOrphans: false, rendering)));
        return attempt;
    }

    /// <summary>Makes this attempt the ambient run (output capture, parent of what it dispatches) until disposed.</summary>
    public IDisposable Enter() => JobLogScope.Push(new AmbientFrame(AmbientKind.TaskRun, Run.Id, JobLogScope.Current) { Output = _output });

    /// <summary>Ends the run: its stop is its start plus the monotonic time since, whatever the wall clock did meanwhile.</summary>
    public void Finish(TaskRunState state, string? error, DateTime? nextRetry = null)
    {
        var text = _output.Snapshot();
        var output = text is null ? null : _services.Redactor.Bound(text);
        Track(_services.Recorder.Enqueue(new RunFinished(Run.Id, Run.TaskId, state, _services.Since(Run.Start, _started), error, output, nextRetry)));
    }

    public void Track(long sequence) => _delivery?.Track(sequence);
}
