namespace JobLog.Recording;

/// <summary>A kind of work this process finds in the ledger for a broker none of its buses reaches.</summary>
internal enum StrandedKind
{
    /// <summary>Scheduled messages overdue (the JobLog scheduler's dispatcher, event 3012).</summary>
    ScheduledMessages,

    /// <summary>Failure retries asked for and not sent (the retry sender, event 3205).</summary>
    Retries,
}

/// <summary>
/// What this process last found stranded, per kind: the dispatcher and the retry sender set their line at each check
/// (null when none is stranded), and <see cref="HostHeartbeat"/> writes the joined lines to this host's row
/// (<see cref="HostLog.Stranded"/>), so the hosts page and <c>api/hosts</c> show what the warnings 3012 and 3205 log.
/// Per process, as the checks are: whether a message is stranded depends on the buses of the process that looks.
/// </summary>
internal sealed class StrandedWork
{
    private readonly Lock _lock = new();
    private readonly string?[] _lines = new string?[Enum.GetValues<StrandedKind>().Length];
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Sets the line of <paramref name="kind"/>, or clears it (null); a different line completes <see cref="Changed"/>.</summary>
    public void Set(StrandedKind kind, string? line)
    {
        TaskCompletionSource changed;
        lock (_lock)
        {
            if (string.Equals(_lines[(int)kind], line, StringComparison.Ordinal))
            {
                return;
            }

            _lines[(int)kind] = line;
            changed = _changed;
            _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        changed.TrySetResult();
    }

    /// <summary>
    /// Completes when a line changes after this was read: the heartbeat writes the new lines at once rather than at its
    /// next interval (a check sets its line again each time, so this is at most one write per check and kind).
    /// </summary>
    public Task Changed
    {
        get
        {
            lock (_lock)
            {
                return _changed.Task;
            }
        }
    }

    /// <summary>The lines joined by "; ", cut to <see cref="LedgerModel.StrandedLength"/>; null when nothing is stranded.</summary>
    public string? Text
    {
        get
        {
            string text;
            lock (_lock)
            {
                text = string.Join("; ", _lines.Where(l => l is not null));
            }

            return text.Length == 0 ? null
                : text.Length <= LedgerModel.StrandedLength ? text
                : string.Concat(text.AsSpan(0, LedgerModel.StrandedLength - 1), "…");
        }
    }
}
