using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using JobLog.Querying;
using NUnit.Framework;

namespace JobLog.Core.Tests.Querying;

/// <summary>
/// The API's detail documents are the entities' columns under the same JSON names: what the API wrote when it serialised
/// the entities (without their navigations) is what it writes now.
/// </summary>
public class DocumentTests
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);

    /// <summary>How the API wrote entities before it had documents: camelCase, enum names, no navigation back.</summary>
    private static readonly JsonSerializerOptions EntityJson = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase, allowIntegerValues: false) },
        TypeInfoResolver = new DefaultJsonTypeInfoResolver
        {
            Modifiers =
            {
                info =>
                {
                    for (var i = info.Kind == JsonTypeInfoKind.Object ? info.Properties.Count - 1 : -1; i >= 0; i--)
                    {
                        var name = info.Properties[i].Name;
                        if ((info.Type == typeof(TaskLog) && name is "runs" or "taskId") || (info.Type == typeof(TaskRunLog) && name == "task"))
                        {
                            info.Properties.RemoveAt(i);
                        }
                    }
                },
            },
        },
    };

    /// <summary>Every column; a run's document also has its job occurrence and attempt (session 32), read with the task.</summary>
    [TestCase(typeof(TaskLog), typeof(TaskDocument), new[] { "TaskId", "Runs" }, new string[0])]
    [TestCase(typeof(TaskRunLog), typeof(TaskRunDocument), new[] { "Task" }, new[] { "Occurrence", "Attempt" })]
    [TestCase(typeof(InputRequestLog), typeof(InputRequestDocument), new string[0], new string[0])]
    [TestCase(typeof(OutputRequestLog), typeof(OutputRequestDocument), new string[0], new string[0])]
    [TestCase(typeof(OutputRequestRelatedObject), typeof(RelatedObjectDocument), new string[0], new string[0])]
    [TestCase(typeof(CommandLog), typeof(CommandDocument), new string[0], new string[0])]
    public void Document_HasEveryColumnOfItsEntity(Type entity, Type document, string[] navigations, string[] derived)
    {
        static IEnumerable<string> Names(Type type) => type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.Name != "EqualityContract").Select(p => p.Name);

        Assert.That(Names(document), Is.EquivalentTo(Names(entity).Except(navigations).Concat(derived)));
    }

    [Test]
    public void TaskDetailDocument_WritesWhatTheEntitiesWrote()
    {
        var task = new TaskLog
        {
            Id = Guid.NewGuid(), Name = "ChargeCard", QueueName = "q", Input = "Amount=1", TaskArgs = "[]", TaskKwargs = "{}", DispatchedAt = T0,
            EstimatedTimeOfFirstArrival = T0, Expires = T0.AddHours(1), Stale = T0.AddHours(2), State = TaskState.Failed, Start = T0, Stop = T0.AddSeconds(3),
            ParentRunId = Guid.NewGuid(), CorrelationId = Guid.NewGuid(), TraceId = "abc", Host = "h", Release = "1.0", Slug = "s", ExtraData = "{}",
            IsInternal = true, ErrorMessage = "boom",
        };
        var run = new TaskRunLog
        {
            Id = Guid.NewGuid(), TaskId = task.Id, Name = task.Name, QueueName = "q", ConsumerType = "C", Start = T0, Stop = T0.AddSeconds(1),
            State = TaskRunState.Retried, ErrorMessage = "e", Output = "o", Retries = 1, EstimatedTimeOfNextRetry = T0.AddSeconds(5), WaitingTime = 0.5,
            Redelivered = true, Host = "h", JobRetryAttempt = 1, Task = task,
        };
        task.Runs.Add(run);
        var children = new[] { new TaskRow(Guid.NewGuid(), "Child", null, TaskState.Waiting, null, T0, null, null, 0, "h") };
        var outbound = new[] { new RelatedRequest(run.Id, new RequestRow(Guid.NewGuid(), "GET", "psp", "/x", null, 200, RequestLogStatus.Info, T0, T0, null, null, null)) };
        var detail = new TaskDetail(task, [run], new ParentRun(task.ParentRunId.Value, Guid.NewGuid(), "Parent"), children, outbound)
        {
            Occurrences = new Dictionary<Guid, int> { [run.Id] = 3 },
        };

        var document = TaskDetailDocument.From(detail);
        Assert.That(document.Runs.Select(r => (r.Occurrence, r.Attempt, r.JobRetryAttempt)), Is.EqualTo(new (int?, int?, int?)[] { (3, 2, 1) }));
        Assert.That(detail.JobAttempt(run), Is.EqualTo("occurrence 3 · attempt 2"));

        // Besides the run's occurrence and attempt (the detail's Occurrences, by run), what the entities wrote.
        AssertSameJson(document, detail, json =>
        {
            json.AsObject().Remove("occurrences");
            foreach (var r in json["runs"]!.AsArray())
            {
                r!.AsObject().Remove("occurrence");
                r.AsObject().Remove("attempt");
            }
        });
    }

    [Test]
    public void RequestAndCommandDocuments_WriteWhatTheEntitiesWrote()
    {
        var input = new InputRequestLog
        {
            Id = Guid.NewGuid(), Host = "h", Method = "POST", Path = "/p", Queries = "{}", IsSecure = true, Slug = "s", RequestTimestamp = T0,
            RequestHeaders = "{}", RequestBody = "b", ResponseTimestamp = T0.AddSeconds(1), ResponseCode = 500, ResponseHeaders = "{}", ResponseBody = "r",
            Status = RequestLogStatus.Error, ErrorDescription = "d", ExceptionName = "E", UserId = "u", Ip = "10.0.0.1", Type = InputRequestType.Common,
        };
        var output = new OutputRequestLog
        {
            Id = Guid.NewGuid(), Host = "psp", Method = "GET", Path = "/x", RequestTimestamp = T0, Status = RequestLogStatus.Incomplete, InputRequestId = input.Id,
            RelatedObjects = [new OutputRequestRelatedObject { Id = Guid.NewGuid(), TaskRunLogId = Guid.NewGuid(), ContentType = "Order", ObjectId = "7" }],
        };
        var command = new CommandLog
        {
            Id = Guid.NewGuid(), Name = "sweep", Input = "--x", ExecutedFromCommandLine = true, Start = T0, Stop = T0.AddSeconds(1), Output = "o",
            IsSuccessful = false, ErrorMessage = "e", ExitCode = 2, Host = "h",
        };
        RelatedRequest[] none = [];

        AssertSameJson(InputRequestDetailDocument.From(new InputRequestDetail(input, none)), new InputRequestDetail(input, none));
        var outputDetail = new OutputRequestDetail(output, null, [new RelatedRun(Guid.NewGuid(), Guid.NewGuid(), "T", TaskRunState.Succeeded, T0)]);
        AssertSameJson(OutputRequestDetailDocument.From(outputDetail), outputDetail);
        AssertSameJson(CommandDetailDocument.From(new CommandDetail(command, none)), new CommandDetail(command, none));
    }

    private static void AssertSameJson(object document, object entities, Action<JsonNode>? derived = null)
    {
        var now = JsonNode.Parse(JsonSerializer.Serialize(document, LedgerJson.Options))!;
        var before = JsonNode.Parse(JsonSerializer.Serialize(entities, EntityJson))!;
        derived?.Invoke(now);
        derived?.Invoke(before);

        Assert.That(JsonNode.DeepEquals(now, before), Is.True, $"now:    {now}\nbefore: {before}");
    }
}
