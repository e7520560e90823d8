using MassTransit;

namespace JobLog.MassTransit.Internal.Failures;

/// <summary>
/// What <c>UseTaskLogging</c> adds to a bus for failures (docs/architecture.md#failures): the keeper of failed messages,
/// the error-store error pipe when the ledger is the error store, and the retry sender (while the bus runs).
/// </summary>
internal static class FailureWiring
{
    public static void Connect(IBusFactoryConfigurator configurator, IServiceProvider provider, TaskLoggingServices services)
    {
        var failures = services.Options.Failures;
        if (failures.LedgerIsErrorStore && !failures.KeepMessages)
        {
            throw new ConfigurationException(
                "JobLog's Failures.LedgerIsErrorStore needs Failures.KeepMessages: without a kept copy a failed message would be lost.");
        }

        services.Keeper = FailedMessageKeeper.Create(provider, services.Options);
        if (failures.LedgerIsErrorStore)
        {
            configurator.ConnectEndpointConfigurationObserver(new LedgerErrorStoreObserver());
        }

        // One sender per bus; each sends a retry through the bus whose broker the kept message's input address names.
        var sender = FailureRetrySender.Create(provider);
        configurator.ConnectBusObserver(new BusRunObserver(sender, sender.Buses));
    }
}
