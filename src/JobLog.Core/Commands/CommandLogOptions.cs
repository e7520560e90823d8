namespace JobLog;

/// <summary>Command logging (<see cref="CommandLogger"/>; <c>AddJobLog(o => o.Commands...)</c>).</summary>
public sealed class CommandLogOptions
{
    /// <summary>
    /// Command names that run without a <see cref="CommandLog"/> (the seed's <c>COMMAND_LOG_EXCLUDED_COMMANDS</c>),
    /// compared ignoring case. Default empty.
    /// </summary>
    public IList<string> ExcludedNames { get; } = [];

    /// <summary>
    /// Capture what the command writes to <see cref="Console.Out"/> and <see cref="Console.Error"/> (still echoed).
    /// Only writes made inside the command's own async flow are captured. Default true.
    /// </summary>
    public bool CaptureConsole { get; set; } = true;
}
