namespace JobLog;

/// <summary>One console command run.</summary>
public sealed class CommandLog
{
    /// <summary>Id.</summary>
    public Guid Id { get; set; }

    /// <summary>Command name.</summary>
    public string Name { get; set; } = "";

    /// <summary>The arguments, masked.</summary>
    public string? Input { get; set; }

    /// <summary>True when run from the command line rather than from code.</summary>
    public bool ExecutedFromCommandLine { get; set; }

    /// <summary>Start.</summary>
    public DateTime Start { get; set; }

    /// <summary>Stop.</summary>
    public DateTime? Stop { get; set; }

    /// <summary>Captured stdout and stderr, bounded.</summary>
    public string? Output { get; set; }

    /// <summary>Null while running.</summary>
    public bool? IsSuccessful { get; set; }

    /// <summary>Error text.</summary>
    public string? ErrorMessage { get; set; }

    /// <summary>Process exit code.</summary>
    public int? ExitCode { get; set; }

    /// <summary>Machine.</summary>
    public string? Host { get; set; }
}
