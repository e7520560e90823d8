namespace JobLog;

/// <summary>State of a dispatched task. Persisted as an integer (the seed's legacy values).</summary>
public enum TaskState
{
    /// <summary>Dispatched, no run has started yet.</summary>
    Waiting = 1,

    /// <summary>A run is in progress.</summary>
    Active = 2,

    /// <summary>The last run succeeded.</summary>
    Succeeded = 3,

    /// <summary>The last run failed and no retry follows.</summary>
    Failed = 4,

    /// <summary>The last run failed and a retry is scheduled.</summary>
    Retried = 5,

    /// <summary>The task went stale (set by the sweeper) or was never consumed before it expired.</summary>
    Expired = 6,

    /// <summary>
    /// The last run was cancelled (a job consumer's attempt cancelled through MassTransit's job service): final, neither
    /// a success nor a failure. Added after the seed's states.
    /// </summary>
    Cancelled = 7,
}

/// <summary>State of one consume attempt.</summary>
public enum TaskRunState
{
    /// <summary>The attempt is in progress.</summary>
    Active = 1,

    /// <summary>The consumer completed.</summary>
    Succeeded = 2,

    /// <summary>The consumer threw and no retry follows.</summary>
    Failed = 3,

    /// <summary>The consumer threw and the message will be retried or redelivered.</summary>
    Retried = 4,

    /// <summary>The message arrived after its expiration time, or the run was orphaned (process died, task went stale).</summary>
    Expired = 5,

    /// <summary>
    /// The attempt was cancelled before it finished (a job consumer's <c>JobContext.CancellationToken</c>: the job was
    /// cancelled, or its instance stopped). Added after the seed's states.
    /// </summary>
    Cancelled = 6,
}

/// <summary>Outcome of a logged HTTP request (seed <c>RequestLogState</c>).</summary>
public enum RequestLogStatus
{
    /// <summary>The request has started and not finished.</summary>
    Incomplete = 0,

    /// <summary>Reserved for debugging output.</summary>
    Debug = 10,

    /// <summary>A response below 400.</summary>
    Info = 20,

    /// <summary>A response from 400 to 499.</summary>
    Warning = 30,

    /// <summary>A response of 500 or more, or an exception.</summary>
    Error = 40,

    /// <summary>An exception that left the request without a response.</summary>
    Critical = 50,
}

/// <summary>Kind of inbound request.</summary>
public enum InputRequestType
{
    /// <summary>An ordinary request.</summary>
    Common = 1,

    /// <summary>Rejected by ASP.NET Core's rate limiter.</summary>
    Throttled = 2,

    /// <summary>A login that the application marked as successful.</summary>
    SuccessfulLogin = 3,

    /// <summary>A login that the application marked as unsuccessful.</summary>
    UnsuccessfulLogin = 4,
}

/// <summary>Extension helpers for the state enums.</summary>
public static class TaskStateExtensions
{
    /// <summary>True for SUCCEEDED, FAILED, EXPIRED and CANCELLED: states that no later run event changes.</summary>
    public static bool IsFinal(this TaskState state) =>
        state is TaskState.Succeeded or TaskState.Failed or TaskState.Expired or TaskState.Cancelled;

    /// <summary>True for every state but ACTIVE.</summary>
    public static bool IsFinal(this TaskRunState state) => state != TaskRunState.Active;
}
