using JobLog.Testing;
using MassTransit;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Features;

public sealed record CustomerLine(string Customer, int Line, bool Bad = false);

/// <summary>Takes each customer's lines as one batch (BatchOptions.GroupBy); a batch holding a bad line throws.</summary>
public sealed class CustomerLineBatchConsumer : IConsumer<Batch<CustomerLine>>
{
    public Task Consume(ConsumeContext<Batch<CustomerLine>> context)
    {
        if (context.Message.Select(m => m.Message).FirstOrDefault(m => m.Bad) is { } bad)
        {
            throw new InvalidOperationException($"customer {bad.Customer}: line {bad.Line} is bad");
        }

        return Task.CompletedTask;
    }
}

/// <summary>Batch consumers grouped by a key, with one group failing through its retries (session 30).</summary>
public class Session30BatchTests
{
    [Test]
    public async Task BatchGroupedByCustomer_OneGroupFailing_EachMessagesRunsAreItsGroups()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<CustomerLineBatchConsumer>(c =>
            c.Options<BatchOptions>(o => o.SetMessageLimit(10).SetTimeLimit(TimeSpan.FromSeconds(1)).GroupBy<CustomerLine, string>(m => m.Message.Customer))), retries: 1);
        var lines = new[] { new CustomerLine("ann", 1), new CustomerLine("ann", 2), new CustomerLine("bob", 1), new CustomerLine("bob", 2, Bad: true), new CustomerLine("cy", 1) };
        var ids = lines.ToDictionary(l => l, _ => NewId.NextGuid());
        await Task.WhenAll(ids.Select(p => bus.Bus.Publish(p.Key, x => x.MessageId = p.Value)));

        List<TaskLog> tasks = [];
        await LedgerHost.EventuallyAsync(async () =>
        {
            tasks = (await bus.Host.TasksAsync()).Where(t => ids.ContainsValue(t.Id)).ToList();
            return tasks.Count == ids.Count && tasks.All(t => t.State is TaskState.Succeeded or TaskState.Failed);
        }, TimeSpan.FromSeconds(60), "every line's task ended");

        foreach (var (line, id) in ids)
        {
            var task = tasks.Single(t => t.Id == id);
            var runs = task.Runs.OrderBy(r => r.Retries).ToList();
            TestContext.Out.WriteLine($"{line} {task.State} " + string.Join("; ", runs.Select(r => $"#{r.Retries} {r.State} {r.Output?.Split('\n')[0]} {r.ErrorMessage?.Split('\n')[0]}")));
            var group = ids.Where(p => p.Key.Customer == line.Customer).Select(p => p.Value.ToString()).Order().ToList();
            foreach (var run in runs)
            {
                var header = run.Output!.Split('\n')[0];
                Assert.That(header, Does.StartWith($"Batch of {group.Count}: "), $"{line}: the batch is its customer's lines");
                Assert.That(header[(header.IndexOf(": ", StringComparison.Ordinal) + 2)..].Split(", ").Order(), Is.EqualTo(group), $"{line}: its group's messages");
                Assert.That(run.ConsumerType, Is.EqualTo(nameof(CustomerLineBatchConsumer)));
            }

            if (line.Customer == "bob")
            {
                Assert.That(runs.Select(r => (r.Retries, r.State)), Is.EqualTo(new[] { (0, TaskRunState.Retried), (1, TaskRunState.Failed) }), $"{line}");
                Assert.That(runs.Select(r => r.ErrorMessage), Has.All.Contain("customer bob: line 2 is bad"));
                Assert.That(task.State, Is.EqualTo(TaskState.Failed));
            }
            else
            {
                Assert.That(runs.Select(r => (r.Retries, r.State)), Is.EqualTo(new[] { (0, TaskRunState.Succeeded) }), $"{line}");
            }
        }
    }
}
