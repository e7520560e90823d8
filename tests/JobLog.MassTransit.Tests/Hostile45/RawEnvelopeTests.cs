using System.Text.Json;
using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using RabbitMQ.Client;

namespace JobLog.MassTransit.Tests.Hostile45;

/// <summary>
/// Envelopes a hostile or broken sender publishes raw to a queue JobLog's consumers read (RabbitMQ.Client's
/// BasicPublish, no MassTransit on the sending side): ids that are no Guids, addresses that are no URIs or a megabyte
/// long, times at the ends of the calendar, message types of a megabyte, of nothing or of another assembly. The bus is
/// a plain one (no test harness: its observer reads the MessageId itself and faults such a delivery on its own).
/// </summary>
public class RawEnvelopeTests
{
    private const string ChargeCardUrn = "urn:message:JobLog.MassTransit.Tests:ChargeCard";

    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web);

    /// <summary>
    /// MassTransit parses an envelope's ids and addresses when first read, and throws on every read of one written
    /// wrong; the consumer never reads them, so without JobLog it takes the message. JobLog's reads of them must not
    /// fault it: the consumer runs, the task is SUCCEEDED with the fields it could not read left empty, nothing in _error.
    /// </summary>
    [Test]
    public async Task EnvelopeIdsAndAddressesThatAreNoGuidsOrUris_DoNotFaultTheDelivery_TheTaskIsRecordedWithoutThem()
    {
        await using var bus = await RawBus.StartAsync(TestLedger.Sqlite());
        var cases = new (string Name, (string Key, object? Value)[] Fields)[]
        {
            ("correlationId", [("correlationId", "not-a-guid")]),
            ("conversationId", [("conversationId", new string('c', 100_000))]),
            ("initiatorId and requestId", [("initiatorId", "<script>alert(1)</script>"), ("requestId", "r-1")]),
            ("sourceAddress", [("sourceAddress", "not a uri")]),
            ("destinationAddress", [("destinationAddress", "charge-card")]),
            ("responseAddress and faultAddress", [("responseAddress", "::"), ("faultAddress", "http://[")]),
        };
        var ids = new List<(string Name, Guid Id)>();
        await bus.PublishAsync(cases.Select((c, i) =>
        {
            var id = NewId.NextGuid();
            ids.Add((c.Name, id));
            return (id.ToString(), Envelope(id.ToString(), 100 + i, c.Fields));
        }));
        var after = await bus.SettleAsync(cases.Length);
        var tasks = await bus.Host.TasksAsync();
        var failures = new List<string>();
        foreach (var (name, id) in ids)
        {
            var task = tasks.SingleOrDefault(t => t.Id == id);
            if (task is not { State: TaskState.Succeeded, Runs: [{ State: TaskRunState.Succeeded, ConsumerType: "ChargeCardConsumer" }] })
            {
                failures.Add($"{name}: {(task is null ? "no task" : $"{task.State}, runs {string.Join(", ", task.Runs.Select(r => $"{r.State} {r.ErrorMessage}"))}")}");
            }
            else if (task.CorrelationId is not null || task.ConversationId is not null || task.SourceAddress is not null || task.QueueName != "charge-card")
            {
                failures.Add($"{name}: correlation {task.CorrelationId}, conversation {task.ConversationId}, source {task.SourceAddress}, queue {task.QueueName}");
            }
        }

        Assert.Multiple(async () =>
        {
            Assert.That(failures, Is.Empty);
            Assert.That(await bus.Vhost.MessagesInQueueAsync("charge-card_error"), Is.LessThanOrEqualTo(0), "nothing faulted");
            Assert.That(tasks.Single(t => t.Id == after).State, Is.EqualTo(TaskState.Succeeded));
        });
    }

    /// <summary>
    /// A source or destination address of a megabyte: the task's copy is cut to its column (2,000 and 250 characters,
    /// ending in '…'), and the rest of the row is what came in (its message, not the writer's rejected-row marker).
    /// </summary>
    [TestCase(LedgerProvider.Sqlite)]
    [TestCase(LedgerProvider.PostgreSql)]
    public async Task EnvelopeAddressesOfAMegabyte_AreCutToTheirColumns_AndTheRowKeepsItsMessage(LedgerProvider provider)
    {
        await using var bus = await RawBus.StartAsync(await Ledgers.CreateAsync(provider));
        var source = NewId.NextGuid();
        var destination = NewId.NextGuid();
        await bus.PublishAsync(
        [
            (source.ToString(), Envelope(source.ToString(), 1, ("sourceAddress", "rabbitmq://localhost/" + new string('s', 1024 * 1024)))),
            (destination.ToString(), Envelope(destination.ToString(), 2, ("destinationAddress", "rabbitmq://localhost/" + new string('d', 1024 * 1024)))),
        ]);
        await bus.SettleAsync(2);

        var bySource = await bus.Host.TaskAsync(source);
        var byDestination = await bus.Host.TaskAsync(destination);
        Assert.Multiple(() =>
        {
            Assert.That(bySource.SourceAddress, Has.Length.EqualTo(2000).And.StartWith("rabbitmq://localhost/sss").And.EndWith("…"));
            Assert.That(byDestination.QueueName, Has.Length.EqualTo(250).And.StartWith("ddd").And.EndWith("…"));
            foreach (var task in new[] { bySource, byDestination })
            {
                Assert.That(task.State, Is.EqualTo(TaskState.Succeeded));
                Assert.That(task.Input, Is.Not.Null.And.Contains("Amount"), "the message, not a rejected row's marker");
                Assert.That(task.Runs.Single().State, Is.EqualTo(TaskRunState.Succeeded));
            }
        });
    }

    /// <summary>
    /// Fields JobLog reads as they came, probed (they held): a sent time in 9999 or 0001, an expiry in 0001, a type list
    /// of a megabyte, empty, or of another assembly's type, a host and a header of a megabyte.
    /// </summary>
    [Test]
    public async Task EnvelopeTimesAtTheEndsOfTheCalendar_AndMessageTypesOfAMegabyteNothingOrAnotherAssembly_AreRecordedAsTheyCame()
    {
        await using var bus = await RawBus.StartAsync(TestLedger.Sqlite());
        var cases = new (string Name, (string Key, object? Value)[] Fields)[]
        {
            ("sent 9999", [("sentTime", "9999-12-31T23:59:59.9999999Z")]),
            ("sent 0001", [("sentTime", "0001-01-01T00:00:00Z")]),
            ("expires 0001", [("expirationTime", "0001-01-01T00:00:00Z")]),
            ("type of 1 MB", [("messageType", new[] { "urn:message:Evil:" + new string('T', 1024 * 1024) })]),
            ("no type", [("messageType", Array.Empty<string>())]),
            ("another assembly's type", [("messageType", new[] { "urn:message:System:String" })]),
            ("host of 1 MB", [("host", new Dictionary<string, object?> { ["machineName"] = new string('m', 1024 * 1024), ["processName"] = "<b>x</b>" })]),
            ("header of 1 MB", [("headers", new Dictionary<string, object?> { ["h"] = new string('h', 1024 * 1024), ["MT-OriginalMessageId"] = "nope" })]),
        };
        var ids = cases.Select(_ => NewId.NextGuid()).ToArray();
        await bus.PublishAsync(cases.Select((c, i) => (ids[i].ToString(), Envelope(ids[i].ToString(), 200 + i, c.Fields))));
        await bus.SettleAsync(cases.Length);
        var tasks = (await bus.Host.TasksAsync()).ToDictionary(t => t.Id);

        Assert.Multiple(async () =>
        {
            var sent9999 = tasks[ids[0]];
            Assert.That((sent9999.State, sent9999.DispatchedAt, sent9999.Runs.Single().WaitingTime), Is.EqualTo((TaskState.Succeeded, DateTime.MaxValue, 0.0)));
            var sent0001 = tasks[ids[1]];
            Assert.That((sent0001.State, sent0001.DispatchedAt), Is.EqualTo((TaskState.Succeeded, DateTime.MinValue)));
            Assert.That(sent0001.Runs.Single().WaitingTime, Is.GreaterThan(6e10), "what the sender's time says");
            var expired = tasks[ids[2]];
            Assert.That((expired.State, expired.Runs.Single().State), Is.EqualTo((TaskState.Expired, TaskRunState.Expired)));
            Assert.That(expired.Runs.Single().ErrorMessage, Does.Contain("after its expiration time 0001-01-01"));

            var huge = tasks[ids[3]];
            Assert.That((huge.State, huge.Runs.Single().ConsumerType), Is.EqualTo((TaskState.Failed, "(skipped)")));
            Assert.That(huge.Name, Has.Length.EqualTo(250).And.StartWith("TTT").And.EndWith("…"));
            Assert.That(huge.Runs.Single().ErrorMessage, Has.Length.LessThan(2_000).And.Contains("Skipped: no consumer on charge-card"));
            var none = tasks[ids[4]];
            Assert.That((none.State, none.Name), Is.EqualTo((TaskState.Failed, "(skipped)")));
            var other = tasks[ids[5]];
            Assert.That((other.State, other.Name), Is.EqualTo((TaskState.Failed, "String")));
            Assert.That(other.Runs.Single().ErrorMessage, Does.Contain("(urn:message:System:String)"));

            foreach (var id in ids[6..])
            {
                Assert.That((tasks[id].State, tasks[id].Runs.Single().State), Is.EqualTo((TaskState.Succeeded, TaskRunState.Succeeded)));
                Assert.That(tasks[id].Runs.Single().Host, Is.Not.Contains("mmm"), "the run's host is this host, not the envelope's");
            }

            Assert.That(await bus.Vhost.MessagesInQueueAsync("charge-card_skipped"), Is.EqualTo(4), "the three types no consumer takes, and the expired message JobLog did not give the consumer");
        });
    }

    /// <summary>
    /// A body of 50 MB (one string property) and a message nested 100,000 deep: the first is consumed and its task's
    /// copies of the message are short (the one-line summary and the JSON, the long string value cut in each: 258 and
    /// 264 characters); the second is refused by MassTransit's
    /// deserializer (depth 64) and moved to _error with no row, as any body it cannot read; the consumer goes on.
    /// </summary>
    [Test]
    public async Task ABodyOf50MegabytesAndOneNested100000Deep_TheFirstIsRecordedCut_TheSecondGoesToError()
    {
        await using var bus = await RawBus.StartAsync(TestLedger.Sqlite());
        var big = NewId.NextGuid();
        var deep = NewId.NextGuid();
        var bigEnvelope = Envelope(big.ToString(), 0);
        bigEnvelope["messageType"] = new[] { "urn:message:JobLog.MassTransit.Tests:BigJob" };
        bigEnvelope["message"] = new Dictionary<string, object?> { ["payload"] = new string('p', 50 * 1024 * 1024) };
        await bus.PublishAsync([(big.ToString(), bigEnvelope)], "big-job");

        var nested = string.Concat(Enumerable.Repeat("{\"a\":", 100_000)) + "1" + new string('}', 100_000);
        var raw = $"{{\"messageId\":\"{deep}\",\"messageType\":[\"{ChargeCardUrn}\"],\"message\":{{\"customerId\":5,\"amount\":1,\"x\":{nested}}}}}";
        var factory = new ConnectionFactory { HostName = RabbitMqVhost.Host, VirtualHost = bus.Vhost.Name, UserName = "guest", Password = "guest" };
        await using (var connection = await factory.CreateConnectionAsync())
        await using (var channel = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true)))
        {
            var properties = new BasicProperties { ContentType = "application/vnd.masstransit+json", MessageId = deep.ToString() };
            await channel.BasicPublishAsync("charge-card", "", false, properties, System.Text.Encoding.UTF8.GetBytes(raw));
        }

        await bus.SettleAsync(1);
        await LedgerHost.EventuallyAsync(async () => await bus.Vhost.MessagesInQueueAsync("charge-card_error") == 1, because: "the deep message moved to _error");
        var task = await bus.Host.TaskAsync(big);
        Assert.Multiple(async () =>
        {
            Assert.That((task.State, task.Runs.Single().State), Is.EqualTo((TaskState.Succeeded, TaskRunState.Succeeded)));
            Assert.That(task.Input, Has.Length.LessThan(300).And.StartWith("Payload=ppp"), "the one-line summary");
            Assert.That(task.TaskKwargs, Has.Length.LessThan(1_000).And.StartWith("{\"Payload\":\"ppp"), "the message, its long string value cut");
            Assert.That(await bus.Host.QueryAsync(db => db.TaskLogs.AnyAsync(t => t.Id == deep)), Is.False, "no row for a body MassTransit cannot read");
        });
    }

    /// <summary>
    /// Two different messages under one MessageId (a replay or a forgery): the task id is the MessageId, so both
    /// deliveries are runs of one task (by design, docs/reviews/session34-hostile.md). The second does not overwrite the
    /// first's row: the task keeps one message whole, never a mix, and the second message's body is not in the ledger.
    /// </summary>
    [Test]
    public async Task TwoMessagesUnderOneMessageId_AreTwoRunsOfOneTask_WhoseMessageIsOneOfThemWhole()
    {
        await using var bus = await RawBus.StartAsync(TestLedger.Sqlite());
        var id = NewId.NextGuid();
        await bus.PublishAsync([(id.ToString(), Envelope(id.ToString(), 301)), (id.ToString(), Envelope(id.ToString(), 302))]);
        await bus.SettleAsync(0);
        await LedgerHost.EventuallyAsync(
            async () => await bus.Host.QueryAsync(db => db.TaskRunLogs.CountAsync(r => r.TaskId == id && r.State == TaskRunState.Succeeded)) == 2,
            because: "both deliveries ran");
        await bus.Host.FlushAsync();

        var tasks = await bus.Host.TasksAsync();
        var task = tasks.Single(t => t.Id == id);
        Assert.Multiple(() =>
        {
            Assert.That((task.State, task.Runs.Count), Is.EqualTo((TaskState.Succeeded, 2)));
            Assert.That(new[] { "301", "302" }.Count(c => task.Input!.Contains(c, StringComparison.Ordinal)), Is.EqualTo(1), task.Input);
            Assert.That(tasks.Count(t => t.Input?.Contains("30", StringComparison.Ordinal) == true), Is.EqualTo(1), "no second task");
        });
    }

    /// <summary>
    /// Transport headers of every AMQP type RabbitMQ carries (a double NaN it refuses itself: the broker closes the
    /// connection with 541 INTERNAL_ERROR), each alone on a message that succeeds and on one that fails: every task ends
    /// with its one run, and every failed message's copy is kept with its headers as text, a table 1,000 deep cut to
    /// JSON 32 levels deep, 3,000 headers all there.
    /// </summary>
    [Test]
    public async Task TransportHeadersOfEveryAmqpType_EachTaskEnds_AndTheFailedMessagesAreKeptWithThemAsText()
    {
        await using var bus = await RawBus.StartAsync(TestLedger.Sqlite());
        static object Deep(int depth)
        {
            object deep = "bottom";
            for (var i = 0; i < depth; i++)
            {
                deep = new Dictionary<string, object?> { ["d"] = deep };
            }

            return deep;
        }

        var many = new Dictionary<string, object?>();
        for (var i = 0; i < 3000; i++)
        {
            many["x-" + i] = i;
        }

        var cases = new (string Name, IDictionary<string, object?> Headers)[]
        {
            ("string", new Dictionary<string, object?> { ["s"] = "<script>alert(1)</script>" }),
            ("int, long", new Dictionary<string, object?> { ["i"] = 42, ["l"] = long.MaxValue }),
            ("decimal", new Dictionary<string, object?> { ["dec"] = 12.345m }),
            ("double", new Dictionary<string, object?> { ["dbl"] = 1.5 }),
            ("bool", new Dictionary<string, object?> { ["b"] = true }),
            ("bytes", new Dictionary<string, object?> { ["bytes"] = new byte[] { 0xFF, 0x00, 0xFE } }),
            ("timestamp", new Dictionary<string, object?> { ["ts"] = new AmqpTimestamp(253402300799) }),
            ("array", new Dictionary<string, object?> { ["arr"] = new List<object?> { 1, "two", new byte[] { 0xC3 }, null, new List<object?> { 3.5 } } }),
            ("table", new Dictionary<string, object?> { ["table"] = new Dictionary<string, object?> { ["k"] = "v", ["n"] = null } }),
            ("table 1000 deep", new Dictionary<string, object?> { ["deep"] = Deep(1000) }),
            ("3000 headers", many),
            ("redelivery count an array", new Dictionary<string, object?> { ["MT-Redelivery-Count"] = new List<object?> { 1 } }),
        };
        var doomed = new Dictionary<Guid, string>();
        foreach (var (queue, urn, message) in new[]
        {
            ("charge-card", ChargeCardUrn, (object)new Dictionary<string, object?> { ["customerId"] = 1, ["amount"] = 2m }),
            ("doomed-job", "urn:message:JobLog.MassTransit.Tests:DoomedJob", new Dictionary<string, object?> { ["reason"] = "hostile headers" }),
        })
        {
            foreach (var (name, headers) in cases)
            {
                var id = NewId.NextGuid();
                var envelope = Envelope(id.ToString(), 1);
                envelope["messageType"] = new[] { urn };
                envelope["message"] = message;
                await bus.PublishAsync([(id.ToString(), envelope)], queue, headers);
                if (queue == "doomed-job")
                {
                    doomed[id] = name;
                }
            }
        }

        await bus.SettleAsync(2 * cases.Length);
        // Each kept copy is its own statement, beside the writer's rows.
        await LedgerHost.EventuallyAsync(
            async () => await bus.Host.QueryAsync(db => db.KeptMessages.CountAsync()) >= cases.Length, because: "each failed message's copy kept");
        var tasks = await bus.Host.TasksAsync();
        var kept = (await bus.Host.QueryAsync(db => db.KeptMessages.AsNoTracking().ToListAsync())).ToDictionary(k => k.TaskId);
        var codec = bus.Host.Services.GetRequiredService<JobLog.Failures.KeptMessageCodec>();
        var keptHeaders = kept.ToDictionary(k => doomed[k.Key], k => k.Value.Protected is { } p ? codec.Unprotect(p).Headers : null);
        Assert.Multiple(() =>
        {
            Assert.That(tasks.Count(t => t.State == TaskState.Succeeded && t.Runs.Count == 1), Is.EqualTo(cases.Length + 1), "every message that succeeds, and the one after");
            Assert.That(tasks.Where(t => doomed.ContainsKey(t.Id)).Select(t => (t.State, t.Runs.Single().State)), Is.EqualTo(Enumerable.Repeat((TaskState.Failed, TaskRunState.Failed), cases.Length)));
            Assert.That(keptHeaders.Keys, Is.EquivalentTo(doomed.Values), "each failed message's copy kept");
            Assert.That(keptHeaders.Values, Has.All.Not.Null, "with its body and headers");
            Assert.That(keptHeaders["string"]!["s"], Is.EqualTo("<script>alert(1)</script>"));
            Assert.That(keptHeaders["int, long"]!["l"], Is.EqualTo(long.MaxValue.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            Assert.That(keptHeaders["decimal"]!["dec"], Is.EqualTo("12.345"));
            Assert.That(keptHeaders["bytes"]!["bytes"], Is.EqualTo(System.Text.Encoding.UTF8.GetString([0xFF, 0x00, 0xFE])), "bytes as UTF-8 text");
            Assert.That(keptHeaders["array"]!["arr"], Does.StartWith("[1,\"two\","));
            Assert.That(keptHeaders["table"]!["table"], Is.EqualTo("{\"k\":\"v\",\"n\":null}"));
            Assert.That(keptHeaders["table 1000 deep"]!["deep"], Does.StartWith(string.Concat(Enumerable.Repeat("{\"d\":", 33))).And.Length.LessThan(1_000));
            Assert.That(keptHeaders["3000 headers"]!.Keys.Count(k => k.StartsWith("x-", StringComparison.Ordinal) && int.TryParse(k.AsSpan(2), out _)), Is.EqualTo(3000));
        });
    }

    private static Dictionary<string, object?> Envelope(string messageId, int customer, params (string Key, object? Value)[] fields)
    {
        var envelope = new Dictionary<string, object?>
        {
            ["messageId"] = messageId,
            ["messageType"] = new[] { ChargeCardUrn },
            ["message"] = new Dictionary<string, object?> { ["customerId"] = customer, ["amount"] = 1.5m },
            ["sentTime"] = DateTime.UtcNow.ToString("O"),
        };
        foreach (var (key, value) in fields)
        {
            envelope[key] = value;
        }

        return envelope;
    }

    /// <summary>A plain MassTransit bus on RabbitMQ (no test harness) with JobLog and <see cref="ChargeCardConsumer"/>.</summary>
    private sealed class RawBus(LedgerHost host, RabbitMqVhost vhost) : IAsyncDisposable
    {
        public LedgerHost Host => host;

        public RabbitMqVhost Vhost => vhost;

        public static async Task<RawBus> StartAsync(TestLedger ledger)
        {
            var vhost = await RabbitMqVhost.CreateAsync();
            var host = await LedgerHost.StartAsync(ledger, services: s =>
            {
                s.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
                s.AddMassTransit(x =>
                {
                    x.SetKebabCaseEndpointNameFormatter();
                    x.AddConsumer<ChargeCardConsumer>();
                    x.AddConsumer<DoomedJobConsumer>();
                    x.AddConsumer<BigJobConsumer>();
                    x.UsingRabbitMq((context, cfg) =>
                    {
                        cfg.Host(RabbitMqVhost.Host, vhost.Name, h =>
                        {
                            h.Username("guest");
                            h.Password("guest");
                        });
                        cfg.UseTaskLogging(context);
                        cfg.ConfigureEndpoints(context);
                    });
                });
            });
            return new RawBus(host, vhost);
        }

        public async Task PublishAsync(IEnumerable<(string TransportId, Dictionary<string, object?> Envelope)> messages, string queue = "charge-card", IDictionary<string, object?>? headers = null)
        {
            var factory = new ConnectionFactory { HostName = RabbitMqVhost.Host, VirtualHost = vhost.Name, UserName = "guest", Password = "guest" };
            await using var connection = await factory.CreateConnectionAsync();
            await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
            foreach (var (transportId, envelope) in messages)
            {
                var properties = new BasicProperties { ContentType = "application/vnd.masstransit+json", MessageId = transportId, Persistent = true, Headers = headers };
                await channel.BasicPublishAsync(queue, "", false, properties, JsonSerializer.SerializeToUtf8Bytes(envelope, s_json));
            }
        }

        /// <summary>
        /// Publishes a valid message after the <paramref name="hostile"/> ones and waits for its task and for as many
        /// ended tasks as messages: the consumer kept consuming, and every message's task ended.
        /// </summary>
        public async Task<Guid> SettleAsync(int hostile)
        {
            var after = NewId.NextGuid();
            await host.Services.GetRequiredService<IBus>().Publish(new ChargeCard(9999, 1m), x => x.MessageId = after);
            await LedgerHost.EventuallyAsync(
                async () => await host.QueryAsync(db => db.TaskLogs.AnyAsync(t => t.Id == after && t.State == TaskState.Succeeded)),
                because: "a valid message after the hostile ones is consumed and recorded");
            await LedgerHost.EventuallyAsync(
                async () => await host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.State == TaskState.Succeeded || t.State == TaskState.Failed || t.State == TaskState.Expired)) > hostile,
                because: $"the {hostile} hostile messages' tasks ended");
            await host.FlushAsync();
            return after;
        }

        public async ValueTask DisposeAsync()
        {
            try
            {
                await host.DisposeAsync();
            }
            finally
            {
                await vhost.DisposeAsync();
            }
        }
    }
}
