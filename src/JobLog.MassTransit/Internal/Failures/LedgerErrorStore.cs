using MassTransit;
using MassTransit.Middleware;

namespace JobLog.MassTransit.Internal.Failures;

/// <summary>
/// <see cref="JobLog.Failures.FailureOptions.LedgerIsErrorStore"/>: every receive endpoint's error pipe becomes
/// guard → MassTransit's fault → move unless kept. A message whose copy is committed is acknowledged and not moved to
/// <c>_error</c>; one whose copy failed is not acknowledged (the exception makes the transport give it back); one that
/// is not a task, or too large to keep, goes to <c>_error</c> as usual.
/// </summary>
internal sealed class LedgerErrorStoreObserver : IEndpointConfigurationObserver
{
    public void EndpointConfigured<T>(T configurator)
        where T : IReceiveEndpointConfigurator =>
        configurator.ConfigureError(x =>
        {
            x.UseFilter(new KeptCopyGuardFilter());
            x.UseFilter(new GenerateFaultFilter());
            x.UseFilter(new MoveUnlessKeptFilter());
        });
}

/// <summary>Refuses to go on when JobLog tried to keep the message and could not: the delivery is not acknowledged.</summary>
internal sealed class KeptCopyGuardFilter : IFilter<ExceptionReceiveContext>
{
    public Task Send(ExceptionReceiveContext context, IPipe<ExceptionReceiveContext> next)
    {
        if (context.TryGetPayload<KeptFailure>(out var kept) && !kept.Committed)
        {
            throw new TransportException(
                context.InputAddress, "JobLog could not commit its copy of the failed message (the ledger is the error store): it is not acknowledged.",
                context.Exception);
        }

        return next.Send(context);
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("jobLogKeptCopyGuard");
}

/// <summary>Moves the message to <c>_error</c> unless the ledger holds its body.</summary>
internal sealed class MoveUnlessKeptFilter : IFilter<ExceptionReceiveContext>
{
    private readonly IFilter<ExceptionReceiveContext> _move = new ErrorTransportFilter();

    public Task Send(ExceptionReceiveContext context, IPipe<ExceptionReceiveContext> next) =>
        context.TryGetPayload<KeptFailure>(out var kept) && kept is { Committed: true, BodyKept: true }
            ? next.Send(context)
            : _move.Send(context, next);

    public void Probe(ProbeContext context) => context.CreateFilterScope("jobLogMoveUnlessKept");
}
