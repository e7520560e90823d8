using System.Text.Json;

namespace JobLog.Recording.Journal;

/// <summary>
/// The journal lines of the records every message makes, written by hand: the polymorphic serializer's bytes (its
/// <c>"Kind"</c> first, then the properties in their declared order, nulls left out, enums as numbers), without the
/// nested <c>JsonSerializer.Serialize</c> its generated code makes for every nullable value and enum. A property added to
/// one of these records or payloads needs its line here: JournalCodecTests sets every property by reflection and
/// compares the bytes with the serializer's.
/// </summary>
internal static class JournalLines
{
    private static readonly JsonEncodedText Kind = JsonEncodedText.Encode("Kind");
    private static readonly JsonEncodedText Dispatched = JsonEncodedText.Encode("dispatched");
    private static readonly JsonEncodedText RunStartedKind = JsonEncodedText.Encode("runStarted");
    private static readonly JsonEncodedText RunFinishedKind = JsonEncodedText.Encode("runFinished");
    private static readonly JsonEncodedText RunNextRetryKind = JsonEncodedText.Encode("runNextRetry");
    private static readonly JsonEncodedText RunFailedForGoodKind = JsonEncodedText.Encode("runFailedForGood");

    private static readonly JsonEncodedText Id = Name(nameof(TaskPayload.Id));
    private static readonly JsonEncodedText PayloadName = Name(nameof(TaskPayload.Name));
    private static readonly JsonEncodedText QueueName = Name(nameof(TaskPayload.QueueName));
    private static readonly JsonEncodedText Input = Name(nameof(TaskPayload.Input));
    private static readonly JsonEncodedText TaskArgs = Name(nameof(TaskPayload.TaskArgs));
    private static readonly JsonEncodedText TaskKwargs = Name(nameof(TaskPayload.TaskKwargs));
    private static readonly JsonEncodedText DispatchedAt = Name(nameof(TaskPayload.DispatchedAt));
    private static readonly JsonEncodedText EstimatedTimeOfFirstArrival = Name(nameof(TaskPayload.EstimatedTimeOfFirstArrival));
    private static readonly JsonEncodedText Expires = Name(nameof(TaskPayload.Expires));
    private static readonly JsonEncodedText Stale = Name(nameof(TaskPayload.Stale));
    private static readonly JsonEncodedText ParentRunId = Name(nameof(TaskPayload.ParentRunId));
    private static readonly JsonEncodedText InputRequestId = Name(nameof(TaskPayload.InputRequestId));
    private static readonly JsonEncodedText CorrelationId = Name(nameof(TaskPayload.CorrelationId));
    private static readonly JsonEncodedText ConversationId = Name(nameof(TaskPayload.ConversationId));
    private static readonly JsonEncodedText TraceId = Name(nameof(TaskPayload.TraceId));
    private static readonly JsonEncodedText SourceAddress = Name(nameof(TaskPayload.SourceAddress));
    private static readonly JsonEncodedText Host = Name(nameof(TaskPayload.Host));
    private static readonly JsonEncodedText Release = Name(nameof(TaskPayload.Release));
    private static readonly JsonEncodedText Slug = Name(nameof(TaskPayload.Slug));
    private static readonly JsonEncodedText ExtraData = Name(nameof(TaskPayload.ExtraData));
    private static readonly JsonEncodedText IsInternal = Name(nameof(TaskPayload.IsInternal));

    private static readonly JsonEncodedText TaskId = Name(nameof(RunPayload.TaskId));
    private static readonly JsonEncodedText ConsumerType = Name(nameof(RunPayload.ConsumerType));
    private static readonly JsonEncodedText Start = Name(nameof(RunPayload.Start));
    private static readonly JsonEncodedText Stop = Name(nameof(RunPayload.Stop));
    private static readonly JsonEncodedText State = Name(nameof(RunPayload.State));
    private static readonly JsonEncodedText ErrorMessage = Name(nameof(RunPayload.ErrorMessage));
    private static readonly JsonEncodedText Output = Name(nameof(RunPayload.Output));
    private static readonly JsonEncodedText EstimatedTimeOfNextRetry = Name(nameof(RunPayload.EstimatedTimeOfNextRetry));
    private static readonly JsonEncodedText WaitingTime = Name(nameof(RunPayload.WaitingTime));
    private static readonly JsonEncodedText Redelivered = Name(nameof(RunPayload.Redelivered));
    private static readonly JsonEncodedText HostInstanceId = Name(nameof(RunPayload.HostInstanceId));
    private static readonly JsonEncodedText JobRetryAttempt = Name(nameof(RunPayload.JobRetryAttempt));

    // The records' own names (RunStarted.TaskSeed is "Task", RunFinished's Stop and ErrorMessage are "Time" and "Error").
    private static readonly JsonEncodedText TaskName = Name("Task");
    private static readonly JsonEncodedText Run = Name(nameof(RunStarted.Run));
    private static readonly JsonEncodedText ExpireOrphans = Name(nameof(RunStarted.ExpireOrphans));
    private static readonly JsonEncodedText RunId = Name(nameof(RunFinished.RunId));
    private static readonly JsonEncodedText Time = Name("Time");
    private static readonly JsonEncodedText Error = Name("Error");
    private static readonly JsonEncodedText NextRetry = Name(nameof(RunFinished.NextRetry));

    /// <summary>Whether <see cref="Write"/> writes <paramref name="record"/> (a record missing a payload is left to the serializer).</summary>
    public static bool Handles(LedgerRecord record) => record is TaskDispatched { Task: not null }
        or RunStarted { Run: not null, TaskSeed: not null }
        or RunFinished or RunNextRetryKnown or RunFailedForGood;

    /// <summary>Writes <paramref name="record"/>, one the <see cref="Handles"/>, as one JSON object.</summary>
    /// <param name="writer">The journal's writer (its encoder escapes the texts, as the serializer's would).</param>
    /// <param name="record">The record.</param>
    /// <param name="errors">A retried run's error text kept escaped, used when the writer has the default encoder.</param>
    /// <exception cref="ArgumentException">A non-finite <see cref="RunPayload.WaitingTime"/> (as the serializer).</exception>
    public static void Write(Utf8JsonWriter writer, LedgerRecord record, RepeatedTexts errors)
    {
        writer.WriteStartObject();
        switch (record)
        {
            case TaskDispatched d:
                writer.WriteString(Kind, Dispatched);
                writer.WritePropertyName(TaskName);
                WriteTask(writer, d.Task);
                break;
            case RunStarted s:
                writer.WriteString(Kind, RunStartedKind);
                writer.WritePropertyName(Run);
                WriteRun(writer, s.Run);
                writer.WritePropertyName(TaskName);
                WriteTask(writer, s.TaskSeed);
                writer.WriteBoolean(ExpireOrphans, s.ExpireOrphans);
                break;
            case RunFinished f:
                writer.WriteString(Kind, RunFinishedKind);
                WriteRunFinished(writer, f, errors);
                break;
            case RunNextRetryKnown n:
                writer.WriteString(Kind, RunNextRetryKind);
                writer.WriteString(RunId, n.RunId);
                writer.WriteString(NextRetry, n.NextRetry);
                break;
            case RunFailedForGood g:
                writer.WriteString(Kind, RunFailedForGoodKind);
                writer.WriteString(RunId, g.RunId);
                writer.WriteString(TaskId, g.TaskId);
                break;
            default:
                throw new ArgumentException($"{record.GetType().Name} is written by the serializer.", nameof(record));
        }

        writer.WriteEndObject();
    }

    private static void WriteTask(Utf8JsonWriter writer, TaskPayload task)
    {
        writer.WriteStartObject();
        writer.WriteString(Id, task.Id);
        OptionalText(writer, PayloadName, task.Name);
        OptionalText(writer, QueueName, task.QueueName);
        OptionalText(writer, Input, task.Input);
        OptionalText(writer, TaskArgs, task.TaskArgs);
        OptionalText(writer, TaskKwargs, task.TaskKwargs);
        writer.WriteString(DispatchedAt, task.DispatchedAt);
        OptionalTime(writer, EstimatedTimeOfFirstArrival, task.EstimatedTimeOfFirstArrival);
        OptionalTime(writer, Expires, task.Expires);
        OptionalTime(writer, Stale, task.Stale);
        OptionalId(writer, ParentRunId, task.ParentRunId);
        OptionalId(writer, InputRequestId, task.InputRequestId);
        OptionalId(writer, CorrelationId, task.CorrelationId);
        OptionalId(writer, ConversationId, task.ConversationId);
        OptionalText(writer, TraceId, task.TraceId);
        OptionalText(writer, SourceAddress, task.SourceAddress);
        OptionalText(writer, Host, task.Host);
        OptionalText(writer, Release, task.Release);
        OptionalText(writer, Slug, task.Slug);
        OptionalText(writer, ExtraData, task.ExtraData);
        writer.WriteBoolean(IsInternal, task.IsInternal);
        writer.WriteEndObject();
    }

    private static void WriteRun(Utf8JsonWriter writer, RunPayload run)
    {
        writer.WriteStartObject();
        writer.WriteString(Id, run.Id);
        writer.WriteString(TaskId, run.TaskId);
        OptionalText(writer, PayloadName, run.Name);
        OptionalText(writer, QueueName, run.QueueName);
        OptionalText(writer, ConsumerType, run.ConsumerType);
        OptionalText(writer, Input, run.Input);
        OptionalText(writer, TaskArgs, run.TaskArgs);
        OptionalText(writer, TaskKwargs, run.TaskKwargs);
        writer.WriteString(Start, run.Start);
        OptionalTime(writer, Stop, run.Stop);
        writer.WriteNumber(State, (int)run.State);
        OptionalText(writer, ErrorMessage, run.ErrorMessage);
        OptionalText(writer, Output, run.Output);
        OptionalTime(writer, EstimatedTimeOfNextRetry, run.EstimatedTimeOfNextRetry);
        if (run.WaitingTime is { } waiting)
        {
            writer.WriteNumber(WaitingTime, waiting);
        }

        writer.WriteBoolean(Redelivered, run.Redelivered);
        OptionalText(writer, Host, run.Host);
        OptionalId(writer, HostInstanceId, run.HostInstanceId);
        if (run.JobRetryAttempt is { } attempt)
        {
            writer.WriteNumber(JobRetryAttempt, attempt);
        }

        writer.WriteEndObject();
    }

    private static void WriteRunFinished(Utf8JsonWriter writer, RunFinished record, RepeatedTexts errors)
    {
        writer.WriteString(RunId, record.RunId);
        writer.WriteString(TaskId, record.TaskId);
        writer.WriteNumber(State, (int)record.State);
        writer.WriteString(Time, record.Stop);
        if (record.ErrorMessage is { } error)
        {
            // A text written before: its escapes are copied, not made again (docs/benchmarks.md, "Session 44 (retries)").
            if (writer.Options.Encoder is null && errors.Encoded(error) is { } escaped)
            {
                writer.WriteString(Error, escaped);
            }
            else
            {
                writer.WriteString(Error, error);
            }
        }

        OptionalText(writer, Output, record.Output);
        OptionalTime(writer, NextRetry, record.NextRetry);
    }

    private static void OptionalText(Utf8JsonWriter writer, JsonEncodedText name, string? value)
    {
        if (value is not null)
        {
            writer.WriteString(name, value);
        }
    }

    private static void OptionalTime(Utf8JsonWriter writer, JsonEncodedText name, DateTime? value)
    {
        if (value is { } time)
        {
            writer.WriteString(name, time);
        }
    }

    private static void OptionalId(Utf8JsonWriter writer, JsonEncodedText name, Guid? value)
    {
        if (value is { } id)
        {
            writer.WriteString(name, id);
        }
    }

    private static JsonEncodedText Name(string name) => JsonEncodedText.Encode(name);
}
