using JobLog.Testing;
using MassTransit;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Scheduling;

/// <summary>A fixture whose tests each start one <see cref="SchedulerBus"/> on the real RabbitMQ, disposed after the test.</summary>
/// <param name="provider">The ledger's database.</param>
public abstract class OneSchedulerBusTests(LedgerProvider provider = LedgerProvider.Sqlite)
{
    private SchedulerBus? _bus;

    [TearDown]
    public async Task DisposeBusAsync()
    {
        if (_bus is not null)
        {
            await _bus.DisposeAsync();
            _bus = null;
        }
    }

    /// <summary>Starts the test's bus on a new ledger of the fixture's database (disposed after the test).</summary>
    protected async Task<SchedulerBus> StartBusAsync(
        Action<IBusRegistrationConfigurator> registrations,
        Action<IBusRegistrationContext, IRabbitMqBusFactoryConfigurator>? configureBus = null) =>
        _bus = await SchedulerBus.StartAsync(await Ledgers.CreateAsync(provider), registrations, configureBus);
}
