using System.Collections.Concurrent;
using JobLog.MassTransit.Tests.Apps44.Scanned;
using JobLog.Testing;
using MassTransit;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Apps44.Scanned
{
    public sealed record Scan44A(int N);

    public sealed record Scan44B(int N);

    public sealed class Scan44AConsumer : IConsumer<Scan44A>
    {
        public Task Consume(ConsumeContext<Scan44A> context) => context.Publish(new Scan44B(context.Message.N));
    }

    /// <summary>Fails its first attempt of each message; its definition names its endpoint and retries once.</summary>
    public sealed class Scan44BConsumer : IConsumer<Scan44B>
    {
        public static readonly ConcurrentDictionary<int, int> Attempts = new();

        public Task Consume(ConsumeContext<Scan44B> context) =>
            Attempts.AddOrUpdate(context.Message.N, 1, (_, a) => a + 1) == 1
                ? throw new InvalidOperationException("scan " + context.Message.N + " not yet")
                : Task.CompletedTask;
    }

    public sealed class Scan44BConsumerDefinition : ConsumerDefinition<Scan44BConsumer>
    {
        public Scan44BConsumerDefinition()
        {
            EndpointName = "scan44-defined";
        }

        protected override void ConfigureConsumer(
            IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<Scan44BConsumer> consumerConfigurator, IRegistrationContext context) =>
            endpointConfigurator.UseMessageRetry(r => r.Immediate(1));
    }
}

namespace JobLog.MassTransit.Tests.Apps44
{
    public sealed record OrderShipped44(int N);

    public sealed record ShipNoted44(int N);

    public sealed record Manual44(int N);

    public sealed class OrderShipped44Consumer : IConsumer<OrderShipped44>
    {
        public Task Consume(ConsumeContext<OrderShipped44> context) => context.Publish(new ShipNoted44(context.Message.N));
    }

    public sealed class ShipNoted44Consumer : IConsumer<ShipNoted44>
    {
        public Task Consume(ConsumeContext<ShipNoted44> context) => Task.CompletedTask;
    }

    public sealed class Manual44Consumer : IConsumer<Manual44>
    {
        public Task Consume(ConsumeContext<Manual44> context) => Task.CompletedTask;
    }

    /// <summary>An application's own endpoint name formatter: dotted, lower case, under an application prefix.</summary>
    public sealed class Dotted44Formatter() : DefaultEndpointNameFormatter(false)
    {
        public override string SanitizeName(string name) => "apps44." + name.ToLowerInvariant();
    }

    /// <summary>
    /// How an application names and finds its endpoints: endpoint name formatters other than kebab case (snake case, a
    /// prefix, its own <c>IEndpointNameFormatter</c>), consumers found by scanning (<c>AddConsumersFromNamespaceContaining</c>,
    /// with a definition found beside them), and <c>ConfigureEndpoints</c> with a filter beside an endpoint of its own.
    /// </summary>
    public class EndpointNameTests
    {
        private static int NextId() => Random.Shared.Next(1000, int.MaxValue);

        private static IEndpointNameFormatter Formatter(string kind) => kind switch
        {
            "snake" => SnakeCaseEndpointNameFormatter.Instance,
            "prefixed" => new KebabCaseEndpointNameFormatter("shop44", false),
            _ => new Dotted44Formatter(),
        };

        /// <summary>
        /// <c>SetEndpointNameFormatter</c> with snake case, a prefixed kebab case, or the application's own formatter: the
        /// task sent to the consumer's queue and its run carry the queue the formatter named; what the consumer publishes
        /// is a child of that run, consumed on its own formatted queue.
        /// </summary>
        [TestCase(Transport.InMemory, "snake", "order_shipped44")]
        [TestCase(Transport.InMemory, "prefixed", "shop44-order-shipped44")]
        [TestCase(Transport.InMemory, "custom", "apps44.ordershipped44")]
        [TestCase(Transport.RabbitMq, "snake", "order_shipped44")]
        [TestCase(Transport.RabbitMq, "custom", "apps44.ordershipped44")]
        public async Task EndpointNameFormatter_OtherThanKebabCase_RunsAndTasksCarryTheFormattedQueue(Transport transport, string kind, string expectedQueue)
        {
            var formatter = Formatter(kind);
            await using var bus = await BusFixture.StartAsync(transport, x =>
            {
                x.AddConsumer<OrderShipped44Consumer>();
                x.AddConsumer<ShipNoted44Consumer>();
            }, formatter: formatter);
            var queue = formatter.Consumer<OrderShipped44Consumer>();
            var notedQueue = formatter.Consumer<ShipNoted44Consumer>();
            TestContext.Out.WriteLine(queue + ", " + notedQueue);
            Assert.That(queue, Is.EqualTo(expectedQueue));

            var (id, n) = (NewId.NextGuid(), NextId());
            var endpoint = await bus.Bus.GetSendEndpoint(new Uri("queue:" + queue));
            await endpoint.Send(new OrderShipped44(n), x => x.MessageId = id);
            var task = await WaitFor(bus, id, t => t.State == TaskState.Succeeded, "consumed on " + queue, 60);
            await SettledAsync(bus.Host, nameof(OrderShipped44), nameof(ShipNoted44));
            var tasks = await bus.Host.TasksAsync();
            foreach (var t in tasks)
            {
                TestContext.Out.WriteLine(Describe(t));
            }

            task = tasks.Single(t => t.Id == id);
            Assert.That(task.QueueName, Is.EqualTo(queue));
            Assert.That(task.Runs.Select(r => (r.ConsumerType, r.State, r.QueueName)),
                Is.EqualTo(new[] { (nameof(OrderShipped44Consumer), TaskRunState.Succeeded, queue) }));
            var noted = tasks.Single(t => t.Name == nameof(ShipNoted44));
            Assert.That((noted.ParentRunId, noted.State), Is.EqualTo(((Guid?)task.Runs.Single().Id, TaskState.Succeeded)));
            Assert.That(noted.Runs.Select(r => (r.ConsumerType, r.QueueName)), Is.EqualTo(new[] { (nameof(ShipNoted44Consumer), notedQueue) }));
            Assert.That(tasks.Where(t => t.State is TaskState.Waiting or TaskState.Active), Is.Empty, "nothing left waiting");
        }

        /// <summary>
        /// Consumers registered by scanning (<c>AddConsumersFromNamespaceContaining</c>), one with a definition found by the
        /// same scan (its endpoint name and its retry): each is recorded on its endpoint, the defined one's first attempt
        /// RETRIED with its error and the second SUCCEEDED on <c>scan44-defined</c>, a child of the first consumer's run.
        /// </summary>
        [TestCase(Transport.InMemory)]
        [TestCase(Transport.RabbitMq)]
        public async Task ConsumersAddedByScanning_WithADefinitionFoundBesideThem_AreRecordedOnTheirEndpoints(Transport transport)
        {
            await using var bus = await BusFixture.StartAsync(transport, x => x.AddConsumersFromNamespaceContaining<Scan44AConsumer>());
            var (id, n) = (NewId.NextGuid(), NextId());
            await bus.Bus.Publish(new Scan44A(n), x => x.MessageId = id);
            var task = await WaitFor(bus, id, t => t.State == TaskState.Succeeded, "the scanned consumer's task succeeded", 60);
            await LedgerHost.EventuallyAsync(
                async () => (await bus.Host.TasksAsync()).Any(t => t.Name == nameof(Scan44B) && t.State == TaskState.Succeeded),
                TimeSpan.FromSeconds(60), "the defined consumer's task succeeded");
            await SettledAsync(bus.Host, nameof(Scan44A), nameof(Scan44B));
            var tasks = await bus.Host.TasksAsync();
            foreach (var t in tasks)
            {
                TestContext.Out.WriteLine(Describe(t));
            }

            task = tasks.Single(t => t.Id == id);
            Assert.That(task.Runs.Select(r => (r.ConsumerType, r.State, r.QueueName)),
                Is.EqualTo(new[] { (nameof(Scan44AConsumer), TaskRunState.Succeeded, "scan44-a") }));
            var b = tasks.Single(t => t.Name == nameof(Scan44B));
            Assert.That(b.ParentRunId, Is.EqualTo(task.Runs.Single().Id));
            var runs = b.Runs.OrderBy(r => r.Retries).ToList();
            Assert.That(runs.Select(r => (r.ConsumerType, r.Retries, r.State, r.QueueName)), Is.EqualTo(new[]
            {
                (nameof(Scan44BConsumer), 0, TaskRunState.Retried, "scan44-defined"), (nameof(Scan44BConsumer), 1, TaskRunState.Succeeded, "scan44-defined"),
            }));
            Assert.That(runs[0].ErrorMessage, Does.Contain("scan " + n + " not yet"));
        }

        /// <summary>
        /// <c>ConfigureEndpoints</c> with a filter that leaves a consumer out, configured by the application on an endpoint of
        /// its own (<c>ReceiveEndpoint("manual44-own", e =&gt; e.ConfigureConsumer&lt;T&gt;(context))</c>): its run is on that
        /// endpoint, and the consumers the filter kept are recorded as usual.
        /// </summary>
        [TestCase(Transport.InMemory)]
        [TestCase(Transport.RabbitMq)]
        public async Task ConfigureEndpointsWithAFilter_AConsumerLeftOutAndConfiguredByHand_IsRecordedOnItsOwnEndpoint(Transport transport)
        {
            await using var bus = await BusFixture.StartAsync(transport, x =>
                {
                    x.AddConsumer<Manual44Consumer>();
                    x.AddConsumer<OrderShipped44Consumer>();
                    x.AddConsumer<ShipNoted44Consumer>();
                },
                endpoints: (context, cfg) => cfg.ReceiveEndpoint("manual44-own", e => e.ConfigureConsumer<Manual44Consumer>(context)),
                endpointFilter: f => f.Exclude<Manual44Consumer>());
            var (manual, shipped) = (NewId.NextGuid(), NewId.NextGuid());
            await bus.Bus.Publish(new Manual44(NextId()), x => x.MessageId = manual);
            await bus.Bus.Publish(new OrderShipped44(NextId()), x => x.MessageId = shipped);
            await WaitFor(bus, manual, t => t.State == TaskState.Succeeded, "the hand-configured consumer's task succeeded", 60);
            await WaitFor(bus, shipped, t => t.State == TaskState.Succeeded, "the filtered-in consumer's task succeeded", 60);
            await SettledAsync(bus.Host, nameof(Manual44), nameof(OrderShipped44), nameof(ShipNoted44));
            var tasks = await bus.Host.TasksAsync();
            foreach (var t in tasks)
            {
                TestContext.Out.WriteLine(Describe(t));
            }

            Assert.That(tasks.Single(t => t.Id == manual).Runs.Select(r => (r.ConsumerType, r.State, r.QueueName)),
                Is.EqualTo(new[] { (nameof(Manual44Consumer), TaskRunState.Succeeded, "manual44-own") }));
            Assert.That(tasks.Single(t => t.Id == shipped).Runs.Select(r => (r.ConsumerType, r.State, r.QueueName)),
                Is.EqualTo(new[] { (nameof(OrderShipped44Consumer), TaskRunState.Succeeded, "order-shipped44") }));
            Assert.That(tasks.Where(t => t.State is TaskState.Waiting or TaskState.Active), Is.Empty, "nothing left waiting");
        }
    }
}
