using System.Runtime.CompilerServices;
using MassTransit;
using MassTransit.Configuration;
using MassTransit.Contracts.JobService;
using MassTransit.JobService;

namespace JobLog.MassTransit.Internal.Jobs;

/// <summary>
/// Runs for the job service's <c>StartJob</c> command on the service instance's endpoint. The job attempt saga sends
/// <c>StartJob</c> to the instance endpoint (<c>instance-…</c>), where MassTransit connects one <c>StartJobConsumer&lt;T&gt;</c>
/// per job type while it builds the job consumer's endpoint, through a consumer configurator it never validates: no
/// configuration observer sees those consumers, so no run filter of JobLog's was on their pipes and the command stayed
/// WAITING. JobLog adds a <c>StartJob</c> filter to the instance endpoint's own pipe instead. MassTransit puts the
/// endpoint's filters of a message type in front of each consumer it connects: the filter in front of the job type's
/// <c>StartJobConsumer&lt;T&gt;</c> (the one that does not ignore the command) records the run, the others let it pass.
/// </summary>
/// <remarks>
/// The endpoint applies the filter once per connected consumer, in the order the job consumers' endpoints add them, which
/// is the order their message pipes are configured in (<see cref="Configure{TConsumer, TJob}"/>): the n-th application
/// is the n-th job type's consumer. Each filter also checks the command's <c>JobTypeId</c>.
/// </remarks>
internal static class StartJobRuns
{
    private static readonly ConditionalWeakTable<IReceiveEndpointConfigurator, StartJobRunSpecification> s_endpoints = new();

    /// <summary>
    /// Called for a job consumer's message pipe (<typeparamref name="TJob"/>), with the job service's settings on its
    /// consumer configurator: adds the specification to the instance endpoint once, and the job type to it.
    /// </summary>
    public static void Configure<TConsumer, TJob>(TaskLoggingServices services, IConsumerConfigurator<TConsumer>? consumer)
        where TConsumer : class
        where TJob : class
    {
        if (consumer is null
            || !consumer.TryGetOptions(out JobServiceSettings settings)
            || settings.InstanceEndpointConfigurator is not { } instance
            || settings.JobService is not { } jobService
            || TaskRunConfigurationObserver.RunType<StartJob>(services) is null)
        {
            return;
        }

        var specification = s_endpoints.GetValue(instance, endpoint =>
        {
            var added = new StartJobRunSpecification(services);
            endpoint.AddPipeSpecification(added);
            return added;
        });
        var name = TaskLoggingServices.ShortName(typeof(StartJobConsumer<TJob>));
        services.Messages.Register(typeof(StartJob));
        services.Consumed.Add(typeof(StartJob), name);
        if (TaskLoggingServices.QueueName(instance.InputAddress) is { } queue)
        {
            services.Consumed.Add(queue, typeof(StartJob), name);
        }

        specification.Add(name, () => jobService.GetJobTypeId<TJob>());
    }
}

/// <summary>The instance endpoint's <c>StartJob</c> filters, one per connected <c>StartJobConsumer&lt;T&gt;</c>.</summary>
internal sealed class StartJobRunSpecification(TaskLoggingServices services) : IPipeSpecification<ConsumeContext<StartJob>>
{
    private readonly List<(string Consumer, Func<Guid> JobTypeId)> _types = [];
    private int _applied;

    /// <summary>At configuration time: the next job type, whose id the job service knows once the bus is built.</summary>
    public void Add(string consumer, Func<Guid> jobTypeId) => _types.Add((consumer, jobTypeId));

    public void Apply(IPipeBuilder<ConsumeContext<StartJob>> builder)
    {
        var index = _applied++;
        if (index < _types.Count)
        {
            builder.AddFilter(new StartJobRunFilter(services, _types[index].Consumer, _types[index].JobTypeId));
        }
    }

    public IEnumerable<ValidationResult> Validate() => [];
}

/// <summary>A run per <c>StartJob</c> of its job type, in front of that job type's <c>StartJobConsumer&lt;T&gt;</c>.</summary>
internal sealed class StartJobRunFilter(TaskLoggingServices services, string consumer, Func<Guid> jobTypeId) : IFilter<ConsumeContext<StartJob>>
{
    private readonly TaskRunFilter<StartJob> _run = new(services, consumer);
    private Guid? _jobTypeId;

    public Task Send(ConsumeContext<StartJob> context, IPipe<ConsumeContext<StartJob>> next) =>
        context.Message.JobTypeId == (_jobTypeId ??= JobTypeId()) ? _run.Send(context, next) : next.Send(context);

    public void Probe(ProbeContext context) => context.CreateFilterScope("jobLogStartJob").Add("consumer", consumer);

    private Guid JobTypeId()
    {
        try
        {
            return jobTypeId();
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The job service does not know the job type: its consumer ignores every StartJob, and so does this filter.
            services.RecordingFailed(ex, "job.start-job");
            return Guid.Empty;
        }
    }
}
