using JobLog.Samples.RequestResponse;
using JobLog.Testing;
using Microsoft.Extensions.Hosting;
using NUnit.Framework;

namespace JobLog.Samples.Tests.RequestResponse;

public class RequestResponseSampleTests
{
    [Test]
    public async Task RequestResponseSample_LinksResponsesToTheirRequests_ClosesUnconsumedEvents_AndLinksTheFault()
    {
        await using var ledger = TestLedger.Sqlite();
        using var host = RequestResponseSample.CreateHost(SampleLedger.Args(ledger));
        await host.StartAsync();
        try
        {
            var levels = await RequestResponseSample.RunAsync(host.Services);
            Assert.That(levels.Select(l => (l.Sku, l.Count)), Is.EqualTo(new[] { ("apple", 12), ("pear", 0) }));

            var tasks = await SampleLedger.WaitForAsync(host, t =>
                t.Count(x => x.Name == "StockLevel" && x.State == TaskState.Succeeded) == 2
                && t.Any(x => x.Name == "Fault<ReserveStock>" && x.State == TaskState.Succeeded)
                && t.Any(x => x.Name == "StockAudit" && x.State == TaskState.Succeeded)
                && t.Count(x => x.Name == "StockChecked" && x.State == TaskState.Succeeded) == 2
                // The fault is published (and may be recorded) before the failed run's end.
                && t.Any(x => x.Name == "ReserveStock" && x.State == TaskState.Failed), "every message settled");

            Assert.That(tasks.Where(t => t.State is TaskState.Waiting or TaskState.Active), Is.Empty, "nothing waits forever");
            var requests = tasks.Where(t => t.Name == "CheckStock").ToDictionary(t => t.Runs.Single().Id);
            foreach (var response in tasks.Where(t => t.Name == "StockLevel"))
            {
                Assert.That(requests.ContainsKey(response.ParentRunId!.Value), Is.True, "a response is a child of its request's run");
                Assert.That(response.Runs.Single().ConsumerType, Is.EqualTo("RequestClient"));
            }

            var checkedEvent = tasks.First(t => t.Name == "StockChecked");
            Assert.That(checkedEvent.Runs.Single().ConsumerType, Is.EqualTo("(no consumer)"));

            var reserve = tasks.Single(t => t.Name == "ReserveStock");
            Assert.That(reserve.State, Is.EqualTo(TaskState.Failed));
            Assert.That(reserve.Runs.OrderBy(r => r.Retries).Select(r => r.State), Is.EqualTo(new[] { TaskRunState.Retried, TaskRunState.Failed }));
            var fault = tasks.Single(t => t.Name == "Fault<ReserveStock>");
            Assert.That(fault.ParentRunId, Is.EqualTo(reserve.Runs.Single(r => r.State == TaskRunState.Failed).Id));

            var audit = tasks.Single(t => t.Name == "StockAudit");
            Assert.That((audit.Runs.Single().ConsumerType, audit.Runs.Single().QueueName), Is.EqualTo(("Handler<StockAudit>", "stock-audit")));
        }
        finally
        {
            await host.StopAsync();
        }
    }
}
