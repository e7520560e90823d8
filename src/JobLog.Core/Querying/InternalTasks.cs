namespace JobLog.Querying;

/// <summary>
/// Which tasks a list shows with respect to MassTransit's infrastructure messages (<see cref="TaskLog.IsInternal"/>):
/// the application's own by default; <c>internal=true</c> only MassTransit's; <c>internal=all</c> both.
/// </summary>
public enum InternalTasks
{
    /// <summary>The application's own tasks only (the default).</summary>
    Hide = 0,

    /// <summary>MassTransit's infrastructure messages only.</summary>
    Only = 1,

    /// <summary>Both.</summary>
    All = 2,
}

/// <summary>Parses the <c>internal</c> filter (dashboard, API and CLI alike).</summary>
internal static class InternalTasksFilter
{
    public static InternalTasks Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "false" or "no" or "hide" => InternalTasks.Hide,
        "true" or "yes" or "only" => InternalTasks.Only,
        "all" or "any" => InternalTasks.All,
        _ => throw new FilterException($"'internal' must be true (MassTransit's own messages only), all or false (the default), not '{FilterException.Shown(value)}'."),
    };

    public static IQueryable<TaskLog> Apply(IQueryable<TaskLog> tasks, InternalTasks filter) => filter switch
    {
        InternalTasks.Hide => tasks.Where(t => !t.IsInternal),
        InternalTasks.Only => tasks.Where(t => t.IsInternal),
        _ => tasks,
    };
}
