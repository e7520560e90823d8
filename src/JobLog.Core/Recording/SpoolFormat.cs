using System.Text.Json.Serialization;

namespace JobLog.Recording;

/// <summary>
/// The spool file's format: one <see cref="LedgerRecord"/> per line, as System.Text.Json writes it with the record
/// kinds' discriminators (<c>"Kind"</c>, declared on <see cref="LedgerRecord"/>).
/// </summary>
internal static class SpoolFormat
{
    /// <summary>
    /// The record as the spool stores it: a run whose message is rendered lazily carries the rendering itself (the lazy
    /// rendering holds a live object that cannot be written).
    /// </summary>
    public static LedgerRecord ForSpool(LedgerRecord record)
    {
        if (record is not RunStarted { Rendering: { } rendering } started)
        {
            return record;
        }

        if (started.Run.Input is not null)
        {
            return started with { Rendering = null };
        }

        var value = rendering.Value;
        var seed = started.TaskSeed;
        return started with
        {
            Run = started.Run with { Input = value.Input, TaskArgs = value.TaskArgs, TaskKwargs = value.TaskKwargs },
            TaskSeed = seed with { Input = seed.Input ?? value.Input, TaskArgs = seed.TaskArgs ?? value.TaskArgs, TaskKwargs = seed.TaskKwargs ?? value.TaskKwargs },
            Rendering = null,
        };
    }

    /// <summary>False for a line that parsed but lacks what its kind needs (it is skipped and counted as unreadable).</summary>
    public static bool IsComplete(LedgerRecord record) => record switch
    {
        TaskDispatched d => d.Task is not null,
        TaskDispatchFailed f => f.Error is not null,
        RunStarted s => s.Run is not null && s.TaskSeed is not null,
        TaskExtraDataSet x => x.ExtraData is not null,
        CommandRecorded c => c.Command is not null,
        InputRequestRecorded i => i.Request is not null,
        OutputRequestRecorded o => o.Request is not null,
        _ => true,
    };
}

/// <summary>The spool's serializer, generated at build time.</summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(LedgerRecord))]
[JsonSerializable(typeof(TaskDispatched))]
[JsonSerializable(typeof(RunStarted))]
[JsonSerializable(typeof(RunFinished))]
[JsonSerializable(typeof(RunNextRetryKnown))]
[JsonSerializable(typeof(RunFailedForGood))]
internal sealed partial class SpoolJson : JsonSerializerContext;
