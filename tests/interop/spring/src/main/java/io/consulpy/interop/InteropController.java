package io.consulpy.interop;

import java.util.ArrayList;
import java.util.List;

import org.springframework.cloud.client.ServiceInstance;
import org.springframework.cloud.client.discovery.DiscoveryClient;
import org.springframework.cloud.client.serviceregistry.Registration;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.RequestParam;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.client.RestTemplate;

/** Endpoints the test reads: this instance's id, the KV greeting, the discovered peers, calls by name. */
@RestController
public class InteropController {

    private static final String SERVICE = "interop-app";

    private final Registration registration;
    private final Greeting greeting;
    private final DiscoveryClient discovery;
    private final RestTemplate loadBalanced;

    InteropController(Registration registration, Greeting greeting, DiscoveryClient discovery,
                      RestTemplate loadBalanced) {
        this.registration = registration;
        this.greeting = greeting;
        this.discovery = discovery;
        this.loadBalanced = loadBalanced;
    }

    @GetMapping("/id")
    public String id() {
        return registration.getInstanceId();
    }

    @GetMapping("/greeting")
    public String greeting() {
        return greeting.value();
    }

    /** Instance ids of the service as DiscoveryClient sees them, one per line. */
    @GetMapping("/peers")
    public String peers() {
        List<String> ids = new ArrayList<>();
        for (ServiceInstance instance : discovery.getInstances(SERVICE)) {
            ids.add(instance.getInstanceId() + " " + instance.getHost() + ":" + instance.getPort());
        }
        ids.sort(null);
        return String.join("\n", ids);
    }

    /** Calls {@code http://interop-app/id} through the load balancer {@code times} times; the ids answered. */
    @GetMapping("/call")
    public String call(@RequestParam(defaultValue = "4") int times) {
        List<String> answers = new ArrayList<>();
        for (int i = 0; i < times; i++) {
            answers.add(loadBalanced.getForObject("http://" + SERVICE + "/id", String.class));
        }
        return String.join("\n", answers);
    }
}
