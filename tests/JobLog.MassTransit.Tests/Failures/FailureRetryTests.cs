using System.Text;
using JobLog.Failures;
using JobLog.Querying;
using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Failures;

[TestFixture]
public sealed class FailureRetryTests
{
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task Retry_FiftyFailuresAfterTheFix_GivesEachOneNewSucceededRunWithRetriesOneHigher(Transport transport)
    {
        await using var vhost = transport == Transport.RabbitMq ? await RabbitMqVhost.CreateAsync() : null;
        var gate = new Gate();
        await using var host = await FailureTestKit.StartAsync(TestLedger.Sqlite(), gate, vhost);
        var secret = "planted-" + Guid.NewGuid().ToString("N");
        var ids = await FailureTestKit.PublishAsync(host, 50, secret);
        await FailureTestKit.WaitFailedAndKeptAsync(host, ids);
        var before = await host.QueryAsync(db => db.TaskRunLogs.AsNoTracking().Where(r => ids.Contains(r.TaskId)).ToListAsync());

        gate.Open = true;
        var actions = host.Services.GetRequiredService<IFailureActions>();
        var receipt = await actions.RetryAsync(new FailureActionRequest(ids, "tester") { Selection = "test" });
        var again = await actions.RetryAsync(new FailureActionRequest(ids, "tester"));
        var progress = await FailureTestKit.WaitRetryDoneAsync(host, receipt.RequestId);
        await FailureTestKit.WaitAsync(
            host, async db => await db.TaskLogs.CountAsync(t => ids.Contains(t.Id) && t.State == TaskState.Succeeded) == 50, "50 tasks succeeded");

        Assert.That((receipt.Accepted, receipt.Skipped), Is.EqualTo((50, 0)));
        Assert.That((again.Accepted, again.Skipped), Is.EqualTo((0, 50)), "a task already in a retry is not taken twice");
        Assert.That(progress, Is.EqualTo(new RetryProgress(receipt.RequestId, 50, 50, 0, 0, true)));
        var runs = await host.QueryAsync(db => db.TaskRunLogs.AsNoTracking().Where(r => ids.Contains(r.TaskId)).ToListAsync());
        foreach (var id in ids)
        {
            var failed = before.Single(r => r.TaskId == id);
            var retried = runs.Where(r => r.TaskId == id && r.Id != failed.Id).ToList();
            Assert.That(retried.Select(r => (r.State, r.Retries)), Is.EqualTo(new[] { (TaskRunState.Succeeded, failed.Retries + 1) }), $"task {id}");
            Assert.That(gate.Succeeded[id], Is.EqualTo(1), "consumed once after the retry");
        }

        await using var scope = host.Services.CreateAsyncScope();
        var detail = await scope.ServiceProvider.GetRequiredService<LedgerQueries>().TaskAsync(ids[0], default);
        var shown = TaskDetailDocument.From(detail!).Actions;
        Assert.That(shown.Select(a => (a.Kind, a.State, a.RequestedBy)), Does.Contain((FailureActionKind.Retry, FailureActionItemState.Done, "tester")));
        Assert.That(shown.Select(a => (a.Kind, a.State, a.Reason)), Does.Contain((FailureActionKind.Retry, FailureActionItemState.Refused, "already being retried")));
        if (vhost is not null)
        {
            // Default mode: MassTransit moved each failed message to _error as well; that copy stays.
            Assert.That(await vhost.MessagesInQueueAsync("toggled_error"), Is.EqualTo(50));
        }
    }

    [Test]
    public async Task Retry_OfAMessageWhoseSenderForgedJobLogsParentStamps_LinksItUnderNoRunOrRequest()
    {
        // JobLog's stamps (JobLog-ParentRunId, JobLog-InputRequestId) are its own: a sender outside any run that sets them
        // (copying a header from a request, or on purpose) names a run of someone else's task. Neither the dispatch nor a
        // retry of the kept copy (which carries the kept headers) may link the task under that run or request.
        var gate = new Gate();
        await using var host = await FailureTestKit.StartAsync(TestLedger.Sqlite(), gate, null);
        var victim = await FailureTestKit.PublishAsync(host, 1, "victim");
        await FailureTestKit.WaitFailedAndKeptAsync(host, victim);
        var victimRun = await host.QueryAsync(db => db.TaskRunLogs.AsNoTracking().Where(r => r.TaskId == victim[0]).Select(r => r.Id).FirstAsync());
        var forged = NewId.NextGuid();
        await host.Services.GetRequiredService<IBus>().Publish(new Toggled(1, "forged"), x =>
        {
            x.MessageId = forged;
            x.Headers.Set("JobLog-ParentRunId", victimRun.ToString());
            x.Headers.Set("JobLog-InputRequestId", victimRun.ToString());
        });
        await FailureTestKit.WaitFailedAndKeptAsync(host, [forged]);
        var dispatched = await host.TaskAsync(forged);

        gate.Open = true;
        var receipt = await host.Services.GetRequiredService<IFailureActions>().RetryAsync(new FailureActionRequest([forged], "tester"));
        await FailureTestKit.WaitRetryDoneAsync(host, receipt.RequestId);
        await FailureTestKit.WaitAsync(host, async db => await db.TaskLogs.AnyAsync(t => t.Id == forged && t.State == TaskState.Succeeded), "retried and succeeded");
        var retried = await host.TaskAsync(forged);

        Assert.That((dispatched.ParentRunId, dispatched.InputRequestId), Is.EqualTo(((Guid?)null, (Guid?)null)), "as dispatched");
        Assert.That((retried.ParentRunId, retried.InputRequestId), Is.EqualTo(((Guid?)null, (Guid?)null)), "after the retry");
        Assert.That(await host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.ParentRunId == victimRun)), Is.Zero, "no child under the victim's run");
    }

    [Test]
    public async Task Retry_OfAMessageWithArrayAndTableHeaders_DropsTheBrokersDeathHistory_AndKeepsTheRestAsJsonText()
    {
        // RabbitMQ hands AMQP arrays and tables over as lists and dictionaries. Kept as text they read
        // "System.Collections.Generic.List`1[System.Object]", and the retry re-sent that; x-death (the broker's history of
        // a dead-lettered message, an array of tables) describes a past delivery, as the MT-Fault-* headers dropped do.
        var gate = new Gate();
        await using var vhost = await RabbitMqVhost.CreateAsync();
        await using var host = await FailureTestKit.StartAsync(TestLedger.Sqlite(), gate, vhost);
        var id = NewId.NextGuid();
        var envelope = $$$"""{"messageId":"{{{id}}}","messageType":["urn:message:JobLog.MassTransit.Tests.Failures:Toggled"],"message":{"n":1,"secret":"s"},"headers":{}}""";
        var factory = new RabbitMQ.Client.ConnectionFactory { HostName = RabbitMqVhost.Host, VirtualHost = vhost.Name, UserName = "guest", Password = "guest" };
        await using (var connection = await factory.CreateConnectionAsync())
        await using (var channel = await connection.CreateChannelAsync())
        {
            var properties = new RabbitMQ.Client.BasicProperties
            {
                ContentType = "application/vnd.masstransit+json", MessageId = id.ToString(), Persistent = true,
                Headers = new Dictionary<string, object?>
                {
                    ["x-death"] = new List<object> { new Dictionary<string, object> { ["queue"] = Encoding.UTF8.GetBytes("toggled"), ["count"] = 1L } },
                    ["x-first-death-queue"] = Encoding.UTF8.GetBytes("toggled"),
                    ["X-Tags"] = new List<object> { Encoding.UTF8.GetBytes("a"), 2L },
                    ["X-Tenant"] = new Dictionary<string, object> { ["id"] = 7L },
                },
            };
            await channel.BasicPublishAsync("toggled", "", false, properties, Encoding.UTF8.GetBytes(envelope));
        }

        await FailureTestKit.WaitFailedAndKeptAsync(host, [id]);
        gate.Open = true;
        var receipt = await host.Services.GetRequiredService<IFailureActions>().RetryAsync(new FailureActionRequest([id], "tester"));
        await FailureTestKit.WaitRetryDoneAsync(host, receipt.RequestId);
        await FailureTestKit.WaitAsync(host, async db => await db.TaskLogs.AnyAsync(t => t.Id == id && t.State == TaskState.Succeeded), "retried and succeeded");
        var headers = gate.TransportHeaders[id].ToDictionary(h => h.Key, h => h.Value is byte[] b ? Encoding.UTF8.GetString(b) : h.Value?.ToString());

        Assert.Multiple(() =>
        {
            Assert.That(headers.Keys.Where(k => k.StartsWith("x-death", StringComparison.OrdinalIgnoreCase) || k.StartsWith("x-first-death", StringComparison.OrdinalIgnoreCase)), Is.Empty);
            Assert.That((headers.GetValueOrDefault("X-Tags"), headers.GetValueOrDefault("X-Tenant")), Is.EqualTo(("""["a",2]""", """{"id":7}""")));
        });
    }

    [Test]
    public async Task Keep_TheDatabaseFileHoldsNoPlantedBodyText_AndTheKeysReadItBack()
    {
        var gate = new Gate();
        await using var host = await FailureTestKit.StartAsync(TestLedger.Sqlite(), gate, null);
        var secret = "planted-" + Guid.NewGuid().ToString("N");
        var ids = await FailureTestKit.PublishAsync(host, 3, secret);
        await FailureTestKit.WaitFailedAndKeptAsync(host, ids);
        await host.FlushAsync();

        var bytes = new List<byte>();
        foreach (var file in new[] { host.Ledger.File!, host.Ledger.File + "-wal" }.Where(File.Exists))
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var copy = new MemoryStream();
            await stream.CopyToAsync(copy);
            bytes.AddRange(copy.ToArray());
        }

        var raw = bytes.ToArray();
        Assert.That(raw.AsSpan().IndexOf(Encoding.UTF8.GetBytes(secret)), Is.EqualTo(-1), "the body is encrypted at rest");
        Assert.That(raw.AsSpan().IndexOf(Encoding.UTF8.GetBytes(nameof(ToggledConsumer))), Is.Not.EqualTo(-1), "the scan reads the ledger's text");
        var kept = await host.QueryAsync(db => db.KeptMessages.AsNoTracking().FirstAsync(k => k.TaskId == ids[0]));
        var content = host.Services.GetRequiredService<KeptMessageCodec>().Unprotect(kept.Protected!);
        Assert.That(Encoding.UTF8.GetString(content.Body), Does.Contain(secret));
        Assert.That(kept.ExceptionType, Is.EqualTo(typeof(InvalidOperationException).FullName));
        Assert.That(kept.InputAddress, Does.EndWith("/toggled"));
        Assert.That(kept.ConsumerType, Is.EqualTo(nameof(ToggledConsumer)));
    }

    [Test]
    public async Task Retry_AMessageTooLargeToKeep_IsRefusedAndSaysWhy()
    {
        var gate = new Gate();
        await using var host = await FailureTestKit.StartAsync(TestLedger.Sqlite(), gate, null, o => o.Failures.MaxKeptMessageSize = 100);
        var ids = await FailureTestKit.PublishAsync(host, 1, new string('x', 500));
        await FailureTestKit.WaitFailedAndKeptAsync(host, ids);

        var receipt = await host.Services.GetRequiredService<IFailureActions>().RetryAsync(new FailureActionRequest(ids, "tester"));

        Assert.That((receipt.Accepted, receipt.Skipped), Is.EqualTo((0, 1)));
        var kept = await host.QueryAsync(db => db.KeptMessages.AsNoTracking().SingleAsync(k => k.TaskId == ids[0]));
        Assert.That((kept.TooLarge, kept.Protected), Is.EqualTo((true, (byte[]?)null)));
        var item = await host.QueryAsync(db => db.FailureActionItems.AsNoTracking().SingleAsync(i => i.ActionId == receipt.RequestId));
        Assert.That((item.State, item.Reason), Is.EqualTo((FailureActionItemState.Refused, item.Reason)));
        Assert.That(item.Reason, Does.StartWith("too large to retry"));
    }

    [Test]
    public async Task Resolve_MarksOnlyFailedTasks_AndARetryReopensThem()
    {
        var gate = new Gate();
        await using var host = await FailureTestKit.StartAsync(TestLedger.Sqlite(), gate, null);
        var ids = await FailureTestKit.PublishAsync(host, 2, "x");
        await FailureTestKit.WaitFailedAndKeptAsync(host, ids);
        var actions = host.Services.GetRequiredService<IFailureActions>();

        var resolved = await actions.ResolveAsync(new FailureActionRequest([ids[0], Guid.NewGuid()], "ops") { Note = "fixed upstream" }, FailureResolution.Resolved);
        var task = await host.TaskAsync(ids[0]);
        Assert.That((resolved.Accepted, resolved.Skipped), Is.EqualTo((1, 1)));
        Assert.That((task.Resolution, task.ResolvedAt is not null), Is.EqualTo(((FailureResolution?)FailureResolution.Resolved, true)));

        var deleted = await host.Services.GetRequiredService<IKeptMessageActions>().DeleteKeptMessagesAsync(new FailureActionRequest([ids[1]], "ops"));
        Assert.That((deleted.Accepted, deleted.Skipped), Is.EqualTo((1, 0)));
        Assert.That(await host.QueryAsync(db => db.KeptMessages.CountAsync(k => k.TaskId == ids[1])), Is.Zero);

        gate.Open = true;
        var retry = await actions.RetryAsync(new FailureActionRequest(ids, "ops"));
        Assert.That((retry.Accepted, retry.Skipped), Is.EqualTo((1, 1)), "the deleted kept message cannot be retried");
        Assert.That((await host.TaskAsync(ids[0])).Resolution, Is.Null, "a retried failure is open again");
        await FailureTestKit.WaitRetryDoneAsync(host, retry.RequestId);
        var items = await host.QueryAsync(db => db.FailureActionItems.AsNoTracking().Where(i => i.TaskId == ids[1]).OrderBy(i => i.ActionId).ToListAsync());
        Assert.That(items.Select(i => (i.State, i.Reason)), Is.EqualTo(new[] { (FailureActionItemState.Done, (string?)null), (FailureActionItemState.Refused, "no kept message") }));
    }
}
