using JobLog.Samples.Saga;
using JobLog.Testing;
using Microsoft.Extensions.Hosting;
using NUnit.Framework;

namespace JobLog.Samples.Tests.Saga;

public class SagaSampleTests
{
    [Test]
    public async Task SagaSample_RecordsEveryAttempt_TheSagaStates_AndTheEventItDidNotAccept()
    {
        await using var ledger = TestLedger.Sqlite();
        using var host = SagaSample.CreateHost(SampleLedger.Args(ledger));
        await host.StartAsync();
        try
        {
            var (paid, unpaid) = await SagaSample.RunAsync(host.Services, orders: 2);

            var tasks = await SampleLedger.WaitForAsync(host, t => t.Count == 8 && t.All(x => x.State is TaskState.Succeeded or TaskState.Failed), "every event settled");

            var payments = tasks.Where(t => t.Name == "PaymentReceived").ToList();
            Assert.That(payments, Has.Count.EqualTo(2));
            foreach (var payment in payments)
            {
                var runs = payment.Runs.OrderBy(r => r.Retries).ToList();
                Assert.That(runs.Select(r => (r.State, r.Retries, r.ConsumerType)), Is.EqualTo(new[]
                {
                    (TaskRunState.Retried, 0, "OrderState"), (TaskRunState.Succeeded, 1, "OrderState"),
                }));
                Assert.That(runs[0].ErrorMessage, Does.Contain("ConcurrencyConflictException"));
                Assert.That(runs[1].Output, Does.Match(@"Saga OrderState [0-9a-f-]{36}: AwaitingPayment → Paid"));
            }

            var shipped = tasks.Where(t => t.Name == "OrderShipped").ToList();
            Assert.That(shipped.Count(t => t.State == TaskState.Succeeded), Is.EqualTo(2));
            Assert.That(shipped.Where(t => t.State == TaskState.Succeeded).Select(t => t.Runs.Single().Output),
                Has.All.Contain("Paid → Final (completed)"));
            var refused = shipped.Single(t => t.State == TaskState.Failed).Runs.Single();
            Assert.That(refused.ErrorMessage, Does.StartWith("Not accepted:"));
            Assert.That(refused.Output, Does.Contain($"Saga OrderState {unpaid}: AwaitingPayment"));
            Assert.That(tasks.Where(t => t.Name == "OrderSubmitted").Select(t => t.Runs.Single().Output), Has.All.Contain("(new) → AwaitingPayment"));
            Assert.That(paid, Has.Count.EqualTo(2));
        }
        finally
        {
            await host.StopAsync();
        }
    }
}
