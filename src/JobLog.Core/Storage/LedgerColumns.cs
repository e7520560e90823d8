using JobLog.Recording;

namespace JobLog.Storage;

/// <summary>
/// The write path's columns, each defined once: name, type, nullability and where its value comes from. Both databases
/// generate their statements and binders from these lists (in list order), and
/// <c>LedgerColumnsTests</c> checks every list against the EF model of both providers.
/// </summary>
internal static class LedgerColumns
{
    /// <summary>A task row (<see cref="LedgerModel.Tasks"/>). Input, TaskArgs and TaskKwargs of a lazily rendered row are rendered when read.</summary>
    public static readonly LedgerColumn<TaskWrite>[] Task =
    [
        LedgerColumn<TaskWrite>.Uuid("Id", static (in r) => r.Task.Id),
        LedgerColumn<TaskWrite>.Text("Name", static (in r) => r.Task.Name, nullable: false),
        LedgerColumn<TaskWrite>.Text("QueueName", static (in r) => r.Task.QueueName),
        LedgerColumn<TaskWrite>.Text("Input", static (in r) => r.RendersLazily ? r.Rendering!.Value.Input : r.Task.Input),
        LedgerColumn<TaskWrite>.Text("TaskArgs", static (in r) => r.RendersLazily ? r.Rendering!.Value.TaskArgs : r.Task.TaskArgs),
        LedgerColumn<TaskWrite>.Text("TaskKwargs", static (in r) => r.RendersLazily ? r.Rendering!.Value.TaskKwargs : r.Task.TaskKwargs),
        LedgerColumn<TaskWrite>.Time("DispatchedAt", static (in r) => r.Task.DispatchedAt, nullable: false),
        LedgerColumn<TaskWrite>.Time("EstimatedTimeOfFirstArrival", static (in r) => r.Task.EstimatedTimeOfFirstArrival),
        LedgerColumn<TaskWrite>.Time("Expires", static (in r) => r.Task.Expires),
        LedgerColumn<TaskWrite>.Time("Stale", static (in r) => r.Task.Stale),
        LedgerColumn<TaskWrite>.Bool("IsSetAsStale", static (in _) => false),
        LedgerColumn<TaskWrite>.Int("State", static (in r) => (int)r.State),
        LedgerColumn<TaskWrite>.Time("Start", static (in r) => r.Start),
        LedgerColumn<TaskWrite>.Time("Stop", static (in r) => r.Stop),
        LedgerColumn<TaskWrite>.Uuid("ParentRunId", static (in r) => r.Task.ParentRunId, nullable: true),
        LedgerColumn<TaskWrite>.Uuid("CorrelationId", static (in r) => r.Task.CorrelationId, nullable: true),
        LedgerColumn<TaskWrite>.Uuid("ConversationId", static (in r) => r.Task.ConversationId, nullable: true),
        LedgerColumn<TaskWrite>.Text("TraceId", static (in r) => r.Task.TraceId),
        LedgerColumn<TaskWrite>.Text("SourceAddress", static (in r) => r.Task.SourceAddress),
        LedgerColumn<TaskWrite>.Text("Host", static (in r) => r.Task.Host),
        LedgerColumn<TaskWrite>.Text("Release", static (in r) => r.Task.Release),
        LedgerColumn<TaskWrite>.Text("Slug", static (in r) => r.Task.Slug),
        LedgerColumn<TaskWrite>.Text("ExtraData", static (in r) => r.Task.ExtraData),
        LedgerColumn<TaskWrite>.Bool("IsInternal", static (in r) => r.Task.IsInternal),
        LedgerColumn<TaskWrite>.Uuid("InputRequestId", static (in r) => r.Task.InputRequestId, nullable: true),
    ];

    /// <summary>Producer fields win over what a consumer guessed; state, start and stop stay derived from the runs.</summary>
    public static readonly string[] ProducerFields =
    [
        "Name", "QueueName", "Input", "TaskArgs", "TaskKwargs", "DispatchedAt", "EstimatedTimeOfFirstArrival", "Expires", "Stale",
        "ParentRunId", "CorrelationId", "ConversationId", "TraceId", "SourceAddress", "Host", "Release", "Slug", "ExtraData", "IsInternal", "InputRequestId",
    ];

    /// <summary>
    /// A run row (<see cref="LedgerModel.Runs"/>). The last two only steer the insert: <c>InputFromTask</c> takes Input,
    /// TaskArgs and TaskKwargs from the task row (the message was not rendered on the consume path); <c>Ordinal</c> is
    /// the run's position among this batch's runs of its task and consumer. <c>Retries</c> is computed by the statement.
    /// </summary>
    public static readonly LedgerColumn<RunRow>[] Run =
    [
        LedgerColumn<RunRow>.Uuid("Id", static (in r) => r.Run.Id),
        LedgerColumn<RunRow>.Uuid("TaskId", static (in r) => r.Run.TaskId),
        LedgerColumn<RunRow>.Text("Name", static (in r) => r.Run.Name, nullable: false),
        LedgerColumn<RunRow>.Text("QueueName", static (in r) => r.Run.QueueName),
        LedgerColumn<RunRow>.Text("ConsumerType", static (in r) => r.Run.ConsumerType, nullable: false),
        LedgerColumn<RunRow>.Text("Input", static (in r) => r.Run.Input),
        LedgerColumn<RunRow>.Text("TaskArgs", static (in r) => r.Run.TaskArgs),
        LedgerColumn<RunRow>.Text("TaskKwargs", static (in r) => r.Run.TaskKwargs),
        LedgerColumn<RunRow>.Time("Start", static (in r) => r.Run.Start, nullable: false),
        LedgerColumn<RunRow>.Time("Stop", static (in r) => r.Run.Stop),
        LedgerColumn<RunRow>.Int("State", static (in r) => (int)r.Run.State),
        LedgerColumn<RunRow>.Text("ErrorMessage", static (in r) => r.Run.ErrorMessage),
        LedgerColumn<RunRow>.Text("Output", static (in r) => r.Run.Output),
        LedgerColumn<RunRow>.Time("EstimatedTimeOfNextRetry", static (in r) => r.Run.EstimatedTimeOfNextRetry),
        LedgerColumn<RunRow>.Real("WaitingTime", static (in r) => r.Run.WaitingTime),
        LedgerColumn<RunRow>.Bool("Redelivered", static (in r) => r.Run.Redelivered),
        LedgerColumn<RunRow>.Text("Host", static (in r) => r.Run.Host),
        LedgerColumn<RunRow>.Uuid("HostInstanceId", static (in r) => r.Run.HostInstanceId, nullable: true),
        LedgerColumn<RunRow>.Int("JobRetryAttempt", static (in r) => r.Run.JobRetryAttempt, nullable: true),
        LedgerColumn<RunRow>.Bool("InputFromTask", static (in r) => r.InputFromTask, stored: false),
        LedgerColumn<RunRow>.Int("Ordinal", static (in r) => r.Ordinal, stored: false),
    ];

    /// <summary>The run columns a run's insert takes from the task row when <c>InputFromTask</c> is set.</summary>
    public static readonly string[] RunInputFromTask = ["Input", "TaskArgs", "TaskKwargs"];

    /// <summary>A run finishing (<see cref="RunUpdateKind.Finish"/>): the key, then the columns it sets.</summary>
    public static readonly LedgerColumn<RunUpdate>[] RunFinish =
    [
        LedgerColumn<RunUpdate>.Uuid("Id", static (in u) => u.RunId),
        LedgerColumn<RunUpdate>.Int("State", static (in u) => (int)u.State),
        LedgerColumn<RunUpdate>.Time("Stop", static (in u) => u.Time),
        LedgerColumn<RunUpdate>.Text("ErrorMessage", static (in u) => u.Error),
        LedgerColumn<RunUpdate>.Text("Output", static (in u) => u.Output),
        LedgerColumn<RunUpdate>.Time("EstimatedTimeOfNextRetry", static (in u) => u.NextRetry),
    ];

    /// <summary>A retried run learning its next retry (<see cref="RunUpdateKind.NextRetry"/>): the key, then the column it sets.</summary>
    public static readonly LedgerColumn<RunUpdate>[] RunNextRetry =
    [
        LedgerColumn<RunUpdate>.Uuid("Id", static (in u) => u.RunId),
        LedgerColumn<RunUpdate>.Time("EstimatedTimeOfNextRetry", static (in u) => u.NextRetry),
    ];

    /// <summary>A retried run failing for good (<see cref="RunUpdateKind.FailForGood"/>): the key.</summary>
    public static readonly LedgerColumn<RunUpdate>[] RunFailForGood =
    [
        LedgerColumn<RunUpdate>.Uuid("Id", static (in u) => u.RunId),
    ];

    /// <summary>
    /// A broker redelivery (<see cref="RunUpdateKind.ExpireOrphans"/>): the task and consumer whose ACTIVE runs expire,
    /// the new run (not expired) and the time they stop.
    /// </summary>
    public static readonly LedgerColumn<RunUpdate>[] RunExpireOrphans =
    [
        LedgerColumn<RunUpdate>.Uuid("TaskId", static (in u) => u.TaskId),
        LedgerColumn<RunUpdate>.Text("ConsumerType", static (in u) => u.Consumer, nullable: false),
        LedgerColumn<RunUpdate>.Uuid("Id", static (in u) => u.RunId),
        LedgerColumn<RunUpdate>.Time("Stop", static (in u) => u.Time),
    ];

    /// <summary>A console command (<see cref="LedgerModel.Commands"/>).</summary>
    public static readonly LedgerColumn<CommandPayload>[] Command =
    [
        LedgerColumn<CommandPayload>.Uuid("Id", static (in c) => c.Id),
        LedgerColumn<CommandPayload>.Text("Name", static (in c) => c.Name, nullable: false),
        LedgerColumn<CommandPayload>.Text("Input", static (in c) => c.Input),
        LedgerColumn<CommandPayload>.Bool("ExecutedFromCommandLine", static (in c) => c.ExecutedFromCommandLine),
        LedgerColumn<CommandPayload>.Time("Start", static (in c) => c.Start, nullable: false),
        LedgerColumn<CommandPayload>.Time("Stop", static (in c) => c.Stop),
        LedgerColumn<CommandPayload>.Text("Output", static (in c) => c.Output),
        LedgerColumn<CommandPayload>.Bool("IsSuccessful", static (in c) => c.IsSuccessful, nullable: true),
        LedgerColumn<CommandPayload>.Text("ErrorMessage", static (in c) => c.ErrorMessage),
        LedgerColumn<CommandPayload>.Int("ExitCode", static (in c) => c.ExitCode, nullable: true),
        LedgerColumn<CommandPayload>.Text("Host", static (in c) => c.Host),
    ];

    /// <summary>An inbound HTTP request (<see cref="LedgerModel.InputRequests"/>).</summary>
    public static readonly LedgerColumn<InputRequestPayload>[] InputRequest =
    [
        .. Request<InputRequestPayload>(),
        LedgerColumn<InputRequestPayload>.Text("UserId", static (in r) => r.UserId),
        LedgerColumn<InputRequestPayload>.Text("Ip", static (in r) => r.Ip),
        LedgerColumn<InputRequestPayload>.Int("Type", static (in r) => (int)r.Type),
    ];

    /// <summary>An outbound HTTP request (<see cref="LedgerModel.OutputRequests"/>).</summary>
    public static readonly LedgerColumn<OutputRequestPayload>[] OutputRequest =
    [
        .. Request<OutputRequestPayload>(),
        LedgerColumn<OutputRequestPayload>.Uuid("InputRequestId", static (in r) => r.InputRequestId, nullable: true),
    ];

    /// <summary>An object related to an outbound request (<see cref="LedgerModel.RelatedObjects"/>).</summary>
    public static readonly LedgerColumn<RelatedObjectRow>[] RelatedObject =
    [
        LedgerColumn<RelatedObjectRow>.Uuid("Id", static (in o) => o.Related.Id),
        LedgerColumn<RelatedObjectRow>.Uuid("OutputRequestId", static (in o) => o.OutputRequestId),
        LedgerColumn<RelatedObjectRow>.Uuid("CommandLogId", static (in o) => o.Related.CommandLogId, nullable: true),
        LedgerColumn<RelatedObjectRow>.Uuid("TaskRunLogId", static (in o) => o.Related.TaskRunLogId, nullable: true),
        LedgerColumn<RelatedObjectRow>.Text("ContentType", static (in o) => o.Related.ContentType),
        LedgerColumn<RelatedObjectRow>.Text("ObjectId", static (in o) => o.Related.ObjectId),
    ];

    /// <summary>Setting a task's extra data (the key, then the column).</summary>
    public static readonly LedgerColumn<ExtraDataRow>[] TaskExtraData =
    [
        LedgerColumn<ExtraDataRow>.Uuid("Id", static (in x) => x.TaskId),
        LedgerColumn<ExtraDataRow>.Text("ExtraData", static (in x) => x.ExtraData),
    ];

    /// <summary>A task's ETA set after its dispatch (<see cref="LedgerSql.SetEta"/>).</summary>
    public static readonly LedgerColumn<EtaRow>[] TaskEta =
    [
        LedgerColumn<EtaRow>.Uuid("Id", static (in x) => x.TaskId),
        LedgerColumn<EtaRow>.Time("EstimatedTimeOfFirstArrival", static (in x) => x.Eta),
    ];

    private static LedgerColumn<T>[] Request<T>()
        where T : RequestPayload =>
    [
        LedgerColumn<T>.Uuid("Id", static (in r) => r.Id),
        LedgerColumn<T>.Text("Host", static (in r) => r.Host, nullable: false),
        LedgerColumn<T>.Text("Method", static (in r) => r.Method, nullable: false),
        LedgerColumn<T>.Text("Path", static (in r) => r.Path, nullable: false),
        LedgerColumn<T>.Text("Queries", static (in r) => r.Queries),
        LedgerColumn<T>.Bool("IsSecure", static (in r) => r.IsSecure),
        LedgerColumn<T>.Text("Slug", static (in r) => r.Slug),
        LedgerColumn<T>.Time("RequestTimestamp", static (in r) => r.RequestTimestamp, nullable: false),
        LedgerColumn<T>.Text("RequestHeaders", static (in r) => r.RequestHeaders),
        LedgerColumn<T>.Text("RequestBody", static (in r) => r.RequestBody),
        LedgerColumn<T>.Time("ResponseTimestamp", static (in r) => r.ResponseTimestamp),
        LedgerColumn<T>.Int("ResponseCode", static (in r) => r.ResponseCode, nullable: true),
        LedgerColumn<T>.Text("ResponseHeaders", static (in r) => r.ResponseHeaders),
        LedgerColumn<T>.Text("ResponseBody", static (in r) => r.ResponseBody),
        LedgerColumn<T>.Int("Status", static (in r) => (int)r.Status),
        LedgerColumn<T>.Text("ErrorDescription", static (in r) => r.ErrorDescription),
        LedgerColumn<T>.Text("ExceptionName", static (in r) => r.ExceptionName),
    ];
}

/// <summary>An object related to an outbound request, with the request it belongs to.</summary>
internal readonly record struct RelatedObjectRow(Guid OutputRequestId, RelatedObjectPayload Related);

/// <summary>A task's extra data, set after its dispatch.</summary>
internal readonly record struct ExtraDataRow(Guid TaskId, string? ExtraData);

internal readonly record struct EtaRow(Guid TaskId, DateTime Eta);
