using System.Reflection;
using System.Runtime.CompilerServices;
using NUnit.Framework;

namespace JobLog.Worker.Tests;

/// <summary>The Worker is an application: it shows what users can do, so it sees only JobLog's public API.</summary>
public class PublicApiOnlyTests
{
    [TestCase(typeof(JobLogDbContext))]
    [TestCase(typeof(global::MassTransit.TaskLoggingConfigurationExtensions))]
    [TestCase(typeof(Microsoft.AspNetCore.Builder.JobLogDashboardEndpointRouteBuilderExtensions))]
    public void JobLogLibraries_DoNotShowTheirInternalsToTheWorker(Type fromLibrary)
    {
        var friends = fromLibrary.Assembly.GetCustomAttributes<InternalsVisibleToAttribute>().Select(a => a.AssemblyName).ToList();

        Assert.That(friends, Is.Not.Empty, "the library still has its test friends");
        Assert.That(friends, Has.None.EqualTo(typeof(WorkerApp).Assembly.GetName().Name), fromLibrary.Assembly.GetName().Name);
    }
}
