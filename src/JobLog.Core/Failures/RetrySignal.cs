namespace JobLog.Failures;

/// <summary>Wakes the retry sender when this process queues a retry (it also polls, for other processes' requests).</summary>
internal sealed class RetrySignal
{
    private TaskCompletionSource _signal = New();

    public void Notify() => Volatile.Read(ref _signal).TrySetResult();

    /// <summary>Waits for a notification or <paramref name="timeout"/>, whichever comes first.</summary>
    public async Task WaitAsync(TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
    {
        var current = Volatile.Read(ref _signal);
        try
        {
            await current.Task.WaitAsync(timeout, time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }

        if (current.Task.IsCompleted)
        {
            Interlocked.CompareExchange(ref _signal, New(), current);
        }
    }

    private static TaskCompletionSource New() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
