namespace JobLog.Testing;

/// <summary>
/// The machine's clock with a wall time the test steps (<see cref="Step"/>: an NTP step, a VM resumed), while the monotonic
/// timestamp goes on as the machine's, as on a real machine. <c>FakeTimeProvider</c> moves both together and refuses to go back.
/// </summary>
public sealed class SteppedClock : TimeProvider
{
    private long _offsetTicks;

    /// <summary>Moves the wall time by <paramref name="step"/> (back when negative) from now on.</summary>
    public void Step(TimeSpan step) => Interlocked.Add(ref _offsetTicks, step.Ticks);

    public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + TimeSpan.FromTicks(Interlocked.Read(ref _offsetTicks));
}
