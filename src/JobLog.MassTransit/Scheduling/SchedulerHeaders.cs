namespace JobLog.MassTransit.Scheduling;

/// <summary>
/// Headers JobLog puts on a message it defers to the scheduler (on RabbitMQ: <c>SetTaskOptions(Eta/Countdown)</c>, a send
/// with a transport <c>Delay</c>, a delayed redelivery).
/// </summary>
internal static class SchedulerHeaders
{
    /// <summary>When the message is due (round-trip "O" text: AMQP timestamps only keep seconds).</summary>
    public const string ScheduledTime = "JobLog-Scheduled-Time";

    /// <summary>The address the message goes to when due.</summary>
    public const string Destination = "JobLog-Scheduled-Destination";

    /// <summary>The id the deferred message is stored under when its MessageId may be deferred again (a redelivery).</summary>
    public const string Token = "JobLog-Scheduled-Token";

    /// <summary>RabbitMQ's transport property that names the exchange a send goes to.</summary>
    public const string RabbitMqExchange = "RMQ-Exchange";

    /// <summary>MassTransit's transport property for a transport delay.</summary>
    public const string Delay = "Delay";

    public static bool IsOwn(string header) => header.StartsWith("JobLog-Scheduled-", StringComparison.OrdinalIgnoreCase);
}

/// <summary>Marks the scheduler's own sends of stored messages: the task exists already (the dispatch observer skips them).</summary>
internal sealed class ScheduledDispatchPayload
{
    public static readonly ScheduledDispatchPayload Instance = new();
}
